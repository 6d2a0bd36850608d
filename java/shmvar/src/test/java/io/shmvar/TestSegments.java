package io.shmvar;

import com.google.protobuf.TextFormat;
import io.shmvar.examples.AllTypes;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Keys that remove their segments, raw access for hostile bytes, and the Go peer, for the tests. */
final class TestSegments implements AutoCloseable {
    private final List<Integer> keys = new ArrayList<>();

    /** A key no segment or semaphore set uses; both are removed at {@link #close()}. */
    int newKey() {
        while (true) {
            int key = 0x5a000000 | ThreadLocalRandom.current().nextInt(0x1000000);
            try {
                Native.shmget(key, 0, 0);
            } catch (ShmException e) {
                if (e.errno() == Native.ENOENT && Native.semLookup(key, 0, 0) == -Native.ENOENT) {
                    keys.add(key);
                    return key;
                }
                if (e.errno() != Native.ENOENT) {
                    throw e;
                }
            }
        }
    }

    @Override
    public void close() {
        for (int key : keys) {
            try {
                SharedVariable.removeKey(key);
            } catch (ShmException e) {
                if (e.errno() != Native.ENOENT) {
                    throw e;
                }
            }
        }
    }

    /** Attaches the segment raw and lets {@code f} change its bytes, as a buggy or hostile peer would. */
    static void poke(int key, Consumer<ByteBuffer> f) {
        int id = Native.shmget(key, 0, 0);
        long size = Native.shmStat(key, id).size();
        long address = Native.shmat(key, id, false);
        try {
            f.accept(Native.wrap(address, size));
        } finally {
            Native.shmdt(key, address);
        }
    }

    static byte[] snapshot(int key) {
        byte[][] out = new byte[1][];
        poke(key, m -> {
            out[0] = new byte[m.capacity()];
            m.get(0, out[0]);
        });
        return out[0];
    }

    /** A segment of {@code size} bytes filled by {@code fill}, bypassing the library. */
    int rawSegment(int size, Consumer<ByteBuffer> fill) {
        int key = newKey();
        Native.shmget(key, size, Native.IPC_CREAT | Native.IPC_EXCL | 0600);
        if (fill != null) {
            poke(key, fill);
        }
        return key;
    }

    static Path root() {
        String root = System.getProperty("shmvar.root");
        return Path.of(root == null ? "." : root);
    }

    /** proto/testdata/alltypes.txtpb, which the Go tests read too. */
    static String allTypesText() throws IOException {
        return Files.readString(root().resolve("proto/testdata/alltypes.txtpb"));
    }

    static AllTypes allTypesSample() throws IOException {
        AllTypes.Builder b = AllTypes.newBuilder();
        TextFormat.merge(allTypesText(), b);
        return b.build();
    }

    /** Whether a semaphore set exists under {@code key}. */
    static boolean hasSemaphores(int key) {
        int id = Native.semLookup(key, 0, 0);
        if (id == -Native.ENOENT) {
            return false;
        }
        assertTrue(id >= 0, "semget: errno " + -id);
        return true;
    }

    /**
     * Starts the Java peer's command line in a new JVM on this test's class path (so that it needs no build of the
     * jar): a process of its own, to be killed.
     */
    static Process startJavaPeer(String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
            "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
            "io.shmvar.cli.JavaPeer"));
        command.addAll(List.of(args));
        return new ProcessBuilder(command).redirectErrorStream(true).start();
    }

    /** The result of running bin/go-peer. */
    record Run(int exit, byte[] stdout, String stderr) {
        String out() {
            return new String(stdout, StandardCharsets.UTF_8);
        }
    }

    static Path goPeer() {
        Path peer = root().resolve("bin/go-peer");
        assertTrue(Files.isExecutable(peer), peer + " is missing: run 'make build' (make test does) first");
        return peer;
    }

    static Run runGo(String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(goPeer().toString()));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).start();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread drain = new Thread(() -> copy(p.getErrorStream(), err));
        drain.start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("go-peer " + String.join(" ", args) + " did not finish in 60s");
        }
        drain.join();
        return new Run(p.exitValue(), out, err.toString(StandardCharsets.UTF_8));
    }

    static Run mustRunGo(String... args) throws IOException, InterruptedException {
        Run r = runGo(args);
        if (r.exit() != 0) {
            fail("go-peer " + String.join(" ", args) + ": exit " + r.exit() + ": " + r.stderr());
        }
        return r;
    }

    private static void copy(InputStream in, ByteArrayOutputStream out) {
        try {
            in.transferTo(out);
        } catch (IOException ignored) {
            // the process ended
        }
    }
}
