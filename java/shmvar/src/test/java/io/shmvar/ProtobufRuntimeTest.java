package io.shmvar;

import com.google.protobuf.Message;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The library's tests run twice, once on the oldest protobuf-java it supports
 * (3.25) and once on 4.x (java/shmvar/pom.xml); this proves each run got the
 * runtime it was meant to, so that a passing suite says both work.
 */
class ProtobufRuntimeTest {
    @Test
    void shouldRunOnTheProtobufRuntimeThisExecutionAskedFor() {
        String expected = System.getProperty("shmvar.expect.protobuf");
        assertNotNull(expected, "surefire sets shmvar.expect.protobuf (java/shmvar/pom.xml)");
        String jar = Message.class.getProtectionDomain().getCodeSource().getLocation().getPath();
        assertTrue(jar.endsWith("protobuf-java-" + expected + ".jar"),
            "protobuf-java on the test class path is " + jar + ", expected " + expected);
    }
}
