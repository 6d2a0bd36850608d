package io.shmvar;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A user's own project (java/consumer: its own message type, the installed library artifact, its own protobuf-java)
 * and a user's Go module (go-peer/consumer) share one variable: on protobuf 3.25 and 4.x, on the class path and
 * the module path, on JDK 17 and 25, all at once. make test builds the consumers first (Makefile, "consumers").
 */
class ConsumerTest {
    private static final int TIMES = 300;

    @Test
    void shouldShareOneInventoryAcrossRuntimesModulePathAndGo() throws Exception {
        Path root = TestSegments.root();
        Path pb3 = root.resolve("target/consumer-pb3"), pb4 = root.resolve("target/consumer-pb4");
        for (Path dir : List.of(pb3, pb4)) {
            assertTrue(Files.isRegularFile(dir.resolve("inventory-1.0.jar")),
                dir + " is missing: run 'make consumers' (make test does)");
        }
        Path goConsumer = root.resolve("bin/inventory");
        assertTrue(Files.isExecutable(goConsumer), goConsumer + " is missing: run 'make consumers' (make test does)");
        Path jdk25 = Path.of(System.getProperty("shmvar.jdk25", "/usr/lib/jvm/temurin-25-jdk-amd64"), "bin/java");
        assertTrue(Files.isExecutable(jdk25), jdk25 + " is missing: the JDK 25 run needs it (set -Dshmvar.jdk25=HOME)");

        int key = 0x5a000000 | ThreadLocalRandom.current().nextInt(0x1000000);
        String address = "shm:" + ShmException.formatKey(key);
        List<List<String>> runs = new ArrayList<>();
        runs.add(List.of("java", "-cp", pb3 + "/inventory-1.0.jar:" + pb3 + "/lib/*",
            "com.acme.inventory.InventoryApp", address, "apples", "" + TIMES, "java17-pb3"));
        runs.add(List.of("java", "-cp", pb4 + "/inventory-1.0.jar:" + pb4 + "/lib/*",
            "com.acme.inventory.InventoryApp", address, "apples", "" + TIMES, "java17-pb4"));
        runs.add(List.of("java", "--module-path", pb3 + "/inventory-1.0.jar:" + pb3 + "/lib",
            "--add-modules", "ALL-MODULE-PATH", "-m", "com.acme.inventory/com.acme.inventory.InventoryApp",
            address, "apples", "" + TIMES, "java17-modules"));
        runs.add(List.of(jdk25.toString(), "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-cp", pb4 + "/inventory-1.0.jar:" + pb4 + "/lib/*",
            "com.acme.inventory.InventoryApp", address, "apples", "" + TIMES, "java25-pb4"));
        runs.add(List.of(goConsumer.toString(), "--key", ShmException.formatKey(key), "--item", "apples",
            "--count", "" + TIMES, "--by", "go"));
        List<Process> procs = new ArrayList<>();
        try {
            for (List<String> cmd : runs) {
                procs.add(new ProcessBuilder(cmd).redirectErrorStream(true).start());
            }
            List<String> outputs = new ArrayList<>();
            for (int i = 0; i < procs.size(); i++) {
                Process p = procs.get(i);
                String out = new String(p.getInputStream().readAllBytes());
                assertTrue(p.waitFor(120, TimeUnit.SECONDS), runs.get(i) + " did not finish");
                assertEquals(0, p.exitValue(), runs.get(i) + ":\n" + out);
                outputs.add(out);
            }
            // no warnings from the library on any of them (JDK 25 included)
            for (int i = 0; i < outputs.size(); i++) {
                for (String line : outputs.get(i).split("\n")) {
                    assertFalse(line.startsWith("WARNING") && !line.contains("protobuf"), runs.get(i) + ": " + line);
                }
            }
            assertTrue(outputs.get(0).contains("protobuf=protobuf-java-3.25"), outputs.get(0));
            assertTrue(outputs.get(1).contains("protobuf=protobuf-java-4."), outputs.get(1));
            try (var v = SharedVariable.openDynamic(key, Options.defaults().withReadOnly(true))) {
                var stock = v.messageDescriptor().findFieldByName("stock");
                long apples = -1;
                for (int i = 0; i < v.get().getRepeatedFieldCount(stock); i++) {
                    var entry = (com.google.protobuf.Message) v.get().getRepeatedField(stock, i);
                    if (entry.getField(entry.getDescriptorForType().findFieldByName("key")).equals("apples")) {
                        apples = (Long) entry.getField(entry.getDescriptorForType().findFieldByName("value"));
                    }
                }
                assertEquals((long) TIMES * runs.size(), apples, "every consumer's every update, none lost");
                assertEquals((long) TIMES * runs.size(), v.generation());
            }
        } finally {
            procs.forEach(Process::destroyForcibly);
            try {
                SharedVariable.removeKey(key);
            } catch (ShmException gone) {
                // never created
            }
        }
    }
}
