package io.shmvar.cli;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class JavaPeerTest {
    private static void assertUsageError(String want, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int code = JavaPeer.run(args, new PrintStream(out, true), new PrintStream(err, true));
        String stderr = err.toString(StandardCharsets.UTF_8);
        assertEquals(2, code, String.join(" ", args) + ": " + stderr);
        assertTrue(stderr.contains(want), stderr + " lacks " + want);
        assertEquals(stderr.length() - 1, stderr.indexOf('\n'), "one line: " + stderr);
    }

    @Test
    void shouldExitTwoWithOneLineOnUsageErrors() {
        assertUsageError("Missing required argument", "get");
        assertUsageError("mutually exclusive", "get", "--key", "1", "--file", "x");
        assertUsageError("key \"zz\" is not a number in 1..0xffffffff", "get", "--key", "zz");
        assertUsageError("is not a number in 1..0xffffffff", "get", "--key", "0x100000000");
        assertUsageError("--format \"xml\": want text, json or binary", "get", "--key", "1", "--format", "xml");
        assertUsageError("--count must be at least 1", "incr", "--key", "1", "--count", "0");
        assertUsageError("want spin or park", "incr", "--key", "1", "--count", "5", "--wait", "sleepy");
        assertUsageError("duration \"5 parsecs\" is not like 500ms", "incr", "--key", "1", "--count", "5", "--timeout",
            "5 parsecs");
        assertUsageError("--mode \"9\" is not octal permission bits", "create", "--key", "1", "--mode", "9");
        assertUsageError("unknown message type (known: shmvar.examples.v1.AllTypes, shmvar.examples.v1.Counter, shmvar.examples.v1.Point)", "create", "--key", "1",
            "--type", "no.Such");
        assertUsageError("Unmatched argument", "frobnicate");
    }

    @Test
    void shouldParseGoStyleDurations() {
        JavaPeer.DurationConverter c = new JavaPeer.DurationConverter();
        assertEquals(java.time.Duration.ofMillis(1500), c.convert("1.5s"));
        assertEquals(java.time.Duration.ofSeconds(90), c.convert("1m30s"));
        assertEquals(java.time.Duration.ofNanos(200_000), c.convert("200us"));
    }
}
