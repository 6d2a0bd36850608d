package io.shmvar.cli;

import com.google.protobuf.TextFormat;
import io.shmvar.cli.spec.Command;
import io.shmvar.cli.spec.Flag;
import io.shmvar.examples.AllTypes;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class JavaPeerTest {
    private record Result(int code, String out, String err) {
    }

    private static Result run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int code = JavaPeer.run(args, new PrintStream(out, true), new PrintStream(err, true));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static void assertUsageError(String want, String... args) {
        Result r = run(args);
        assertEquals(2, r.code(), String.join(" ", args) + ": " + r.err());
        assertTrue(r.err().contains(want), r.err() + " lacks " + want);
        assertEquals(r.err().length() - 1, r.err().indexOf('\n'), "one line: " + r.err());
    }

    @Test
    void shouldExitTwoWithOneLineOnUsageErrors() {
        assertUsageError("--key K or --file PATH is required", "get");
        assertUsageError("give --key or --file, not both", "get", "--key", "1", "--file", "x");
        assertUsageError("key \"zz\" is not a number in 1..0xffffffff", "get", "--key", "zz");
        assertUsageError("is not a number in 1..0xffffffff", "get", "--key", "0x100000000");
        assertUsageError("--format \"xml\": want text, json or binary", "get", "--key", "1", "--format", "xml");
        assertUsageError("--count \"0\": want a whole number in 1..9223372036854775807", "incr", "--key", "1", "--count", "0");
        assertUsageError("--wait \"sleepy\": want spin or park", "incr", "--key", "1", "--count", "5", "--wait", "sleepy");
        assertUsageError("--timeout \"5 parsecs\": want a duration such as 500ms", "incr", "--key", "1", "--count", "5",
            "--timeout", "5 parsecs");
        assertUsageError("--mode \"9\" is not octal permission bits", "create", "--key", "1", "--mode", "9");
        assertUsageError("unknown message type (known: shmvar.examples.v1.AllTypes, shmvar.examples.v1.Counter, "
            + "shmvar.examples.v1.Point)", "create", "--key", "1", "--type", "no.Such");
        assertUsageError("unknown command \"frobnicate\"", "frobnicate");
        assertUsageError("unknown option \"-key\" (did you mean --key?)", "get", "-key", "1");
        assertUsageError("only go-peer has this command", "demo");
    }

    @Test
    void shouldAnswerHelpForEveryCommand() {
        for (Command c : Spec.SPEC.getCommandsList()) {
            for (String[] args : new String[][] {{c.getName(), "--help"}, {c.getName(), "-h"}, {"help", c.getName()}}) {
                Result r = run(args);
                assertEquals(0, r.code(), String.join(" ", args) + ": " + r.err());
                assertTrue(r.out().startsWith("usage: java-peer " + c.getName()), r.out());
                for (Flag f : c.getFlagsList()) {
                    assertTrue(f.getHidden() || r.out().contains("--" + f.getName() + " ") && r.out().contains(f.getDescription()),
                        c.getName() + " help lacks --" + f.getName() + ":\n" + r.out());
                }
            }
        }
        Result list = run();
        assertEquals(2, list.code());
        for (Command c : Spec.SPEC.getCommandsList()) {
            assertTrue(c.getHidden() || list.err().contains("\n  " + c.getName() + " "), list.err());
        }
        assertTrue(run("--version").out().matches("java-peer \\S+ \\(layout 2\\.0\\)\n"), run("--version").out());
    }

    /** Every command of the specification runs, and every default parses. */
    @Test
    void shouldRunEverySpecifiedCommand() {
        for (Command c : Spec.SPEC.getCommandsList()) {
            assertTrue(JavaPeer.COMMANDS.containsKey(c.getName()) || !c.getOnlyList().contains("java-peer") && c.getOnlyCount() > 0,
                "java-peer does not run " + c.getName());
            for (Flag f : c.getFlagsList()) {
                if (!f.getDefault().isEmpty()) {
                    Spec.convert(f, f.getDefault());
                }
            }
        }
    }

    @Test
    void shouldParseGoStyleDurations() {
        assertEquals(BigInteger.valueOf(1_500_000_000L), Spec.parseDuration("1.5s"));
        assertEquals(BigInteger.valueOf(90_000_000_000L), Spec.parseDuration("1m30s"));
        assertEquals(BigInteger.valueOf(200_000), Spec.parseDuration("200us"));
        assertEquals(BigInteger.valueOf(200_000), Spec.parseDuration("200µs"));
        assertEquals(BigInteger.valueOf(Long.MAX_VALUE), Spec.parseDuration("2562047h47m16.854775807s"));
        assertEquals(BigInteger.ONE, Spec.parseDuration("1.9ns"));
        for (String bad : new String[] {"", "1", "-1s", "+1s", "1 s", "s", ".s", "1x", "1sm", "1e3s", " 1s", "1s "}) {
            assertNull(Spec.parseDuration(bad), bad);
        }
    }

    @Test
    void shouldFormatFloatsAsGoDoes() {
        assertEquals("1.5", Canonical.formatDouble(1.5));
        assertEquals("100", Canonical.formatDouble(100));
        assertEquals("1e+21", Canonical.formatDouble(1e21));
        assertEquals("100000000000000000000", Canonical.formatDouble(1e20));
        assertEquals("0.000001", Canonical.formatDouble(0.000001));
        assertEquals("1e-7", Canonical.formatDouble(1e-7));
        assertEquals("-1.7976931348623157e+308", Canonical.formatDouble(-Double.MAX_VALUE));
        assertEquals("3.4028235e+38", Canonical.formatFloat(Float.MAX_VALUE));
        assertEquals("0.1", Canonical.formatFloat(0.1f));
        assertEquals("0.10000000149011612", Canonical.formatDouble(0.1f));
        assertEquals("-0", Canonical.formatDouble(-0.0));
        assertEquals("5e-324", Canonical.formatDouble(Double.MIN_VALUE));
        assertEquals("0.30000000000000004", Canonical.formatDouble(0.1 + 0.2));
        assertEquals("282879384806159000", Canonical.formatDouble(2.82879384806159E17)); // Java 17's toString: 2.82879384806159008E17
        assertEquals("2.82879384806159e+22", Canonical.formatDouble(2.82879384806159E22));
    }

    @Test
    void shouldRenderAllTypesOnOneLineThatReadsBack() throws Exception {
        AllTypes.Builder b = AllTypes.newBuilder();
        TextFormat.merge(Files.readString(Path.of(System.getProperty("shmvar.root"), "proto", "testdata", "alltypes.txtpb")), b);
        String text = Canonical.text(b.build());
        AllTypes.Builder back = AllTypes.newBuilder();
        TextFormat.merge(text, back);
        assertEquals(b.build(), back.build());
        assertTrue(!text.contains("\n") && text.startsWith("f_double: -1.7976931348623157e+308 f_float: 3.4028235e+38"), text);
        assertTrue(text.contains("m_string_int64 { key: \"minus\" value: -1 } m_string_int64 { key: \"one\" value: 1 }"), text);
        assertTrue(Canonical.json(b.build()).startsWith("{\"fDouble\":-1.7976931348623157e+308,\"fFloat\":3.4028235e+38,"
            + "\"fInt32\":-2147483648,\"fInt64\":\"-9223372036854775808\""), Canonical.json(b.build()));
    }
}
