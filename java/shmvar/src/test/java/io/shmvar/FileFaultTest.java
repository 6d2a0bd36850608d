package io.shmvar;

import io.shmvar.examples.Counter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Faults of the file backing, on the library: a full file system, a file truncated under its attachments, a FIFO,
 * a file still being created and one larger than any segment. The Go test filefault_test.go runs both commands.
 */
class FileFaultTest {
    @TempDir
    Path dir;

    private static void run(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            fail(String.join(" ", command) + " failed (this test needs root to mount a small tmpfs): " + out);
        }
    }

    @Test
    void shouldFailCreateOnAFullFileSystemWithEnospcAndLeaveNoFile() throws Exception {
        Path mount = Files.createDirectory(dir.resolve("tmpfs"));
        run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mount.toString());
        try {
            Path file = mount.resolve("big.svar");
            ShmException e = assertThrows(ShmException.class, () -> SharedVariable.createFile(file,
                Counter.getDefaultInstance(), Options.defaults().withCapacity(100_000)));
            assertEquals(Native.ENOSPC, e.errno(), e.getMessage());
            assertEquals("fallocate", e.function());
            assertTrue(e.getMessage().contains("file=" + file), e.getMessage());
            assertFalse(Files.exists(file), "create left the file behind");
        } finally {
            run("umount", mount.toString());
        }
    }

    @Test
    void shouldReportATruncatedFileAsCorruptAndStillClose() throws Exception {
        for (long size : new long[] {0, 4096}) {
            Path file = dir.resolve("truncated-" + size + ".svar");
            SharedMemoryVariable<Counter> v = SharedVariable.createFile(file, Counter.getDefaultInstance(),
                Options.defaults());
            SharedMemoryVariable<Counter> other = SharedVariable.openFile(file, Counter.getDefaultInstance(),
                Options.defaults());
            v.set(Counter.newBuilder().setValue(7).build());
            try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
                raf.setLength(size);
            }
            int corrupt = 0;
            for (int i = 0; i < 4; i++) { // with the header's page left, one slot of the two still works
                long value = 8 + i;
                try {
                    v.update(c -> c.toBuilder().setValue(value).build());
                } catch (ShmException e) {
                    assertEquals(ShmException.Reason.CORRUPT, e.reason(), e.getMessage());
                    assertTrue(e.getMessage().contains("file was truncated under this attachment"), e.getMessage());
                    corrupt++;
                }
            }
            assertTrue(corrupt > 0, "no update of a file truncated to " + size + " bytes failed");
            if (size == 0) {
                ShmException e = assertThrows(ShmException.class, other::get);
                assertEquals(ShmException.Reason.CORRUPT, e.reason(), e.getMessage());
                assertThrows(ShmException.class, other::getEncoded);
                assertThrows(ShmException.class, other::lockState);
            } else {
                // Every operation refuses the short file; grown back (the header's page kept), it shows the lock
                // released after the fault.
                assertThrows(ShmException.class, other::lockState);
                try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
                    raf.setLength(other.capacity() * 2L + 8192);
                }
                assertEquals(0, other.lockState().word(), "the lock was not released after the fault");
            }
            // close returns, even after faults
            CompletableFuture<Void> closing = CompletableFuture.runAsync(() -> {
                v.close();
                other.close();
            });
            closing.get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void shouldRefuseAFifoWithoutBlocking() throws Exception {
        Path fifo = dir.resolve("fifo");
        run("mkfifo", fifo.toString());
        CompletableFuture<ShmException> open = CompletableFuture.supplyAsync(() -> assertThrows(ShmException.class,
            () -> SharedVariable.openDynamicFile(fifo, Options.defaults().withReadOnly(true))));
        ShmException e = open.get(10, TimeUnit.SECONDS);
        assertEquals(ShmException.Reason.NOT_SHMVAR, e.reason(), e.getMessage());
    }

    @Test
    void shouldWaitForAnEmptyFileThenSayNotInitialised() throws Exception {
        Path empty = Files.createFile(dir.resolve("empty.svar"));
        ShmException e = assertThrows(ShmException.class, () -> SharedVariable.openDynamicFile(empty,
            Options.defaults().withInitWait(Duration.ofMillis(200))));
        assertEquals(ShmException.Reason.NOT_INITIALISED, e.reason(), e.getMessage());
        assertTrue(e.getMessage().endsWith("segment not initialised: magic and version are zero after 200ms "
            + "(a creator died or this is not a shmvar segment)"), e.getMessage());

        Path model = dir.resolve("model.svar");
        SharedVariable.createFile(model, Counter.getDefaultInstance(), Options.defaults()).close();
        byte[] image = Files.readAllBytes(model);
        CompletableFuture.runAsync(() -> {
            try {
                Thread.sleep(200);
                Files.write(empty, image);
            } catch (Exception ex) {
                throw new RuntimeException(ex);
            }
        });
        SharedVariable.openFile(empty, Counter.getDefaultInstance(), Options.defaults()).close();
    }

    @Test
    void shouldRefuseAFileLargerThanAnySegment() throws Exception {
        assertEquals(537_921_152L, LayoutDescriptor.MAX_SEGMENT_LENGTH); // 1536 + 1 MiB + 2 x align64(16 + 256 MiB)
        Path file = dir.resolve("huge.svar");
        SharedVariable.createFile(file, Counter.getDefaultInstance(), Options.defaults()).close();
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(1L << 30); // sparse: no memory
        }
        ShmException e = assertThrows(ShmException.class, () -> SharedVariable.openFile(file,
            Counter.getDefaultInstance(), Options.defaults()));
        assertEquals(ShmException.Reason.CORRUPT, e.reason());
        assertTrue(e.getMessage().endsWith("segment corrupt: segment size=1073741824 is larger than any shmvar "
            + "segment (at most 537921152 bytes)"), e.getMessage());
    }
}
