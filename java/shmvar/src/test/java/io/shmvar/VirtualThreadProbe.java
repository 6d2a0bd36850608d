package io.shmvar;

import io.shmvar.examples.Counter;

import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * Run on JDK 21 or later with one carrier thread: four virtual threads wait for the lock, which a platform thread
 * holds, and four wait for a change; then an unrelated virtual thread must get the carrier at once. Prints how long
 * it waited. Compiled for Java 17, so virtual threads are reached by reflection.
 */
public final class VirtualThreadProbe {
    public static void main(String[] args) throws Exception {
        int key = Integer.parseInt(args[0]);
        ExecutorService virtual = (ExecutorService) Executors.class.getMethod("newVirtualThreadPerTaskExecutor")
            .invoke(null);
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance());
             var holder = SharedVariable.open(key, Counter.getDefaultInstance())) {
            CountDownLatch held = new CountDownLatch(1), release = new CountDownLatch(1);
            Thread platform = new Thread(() -> holder.update(c -> {
                held.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return c;
            }));
            platform.start();
            held.await();
            long g = v.generation();
            for (int i = 0; i < 4; i++) {
                virtual.submit(() -> v.tryUpdate(c -> c, Duration.ofSeconds(3)));
                virtual.submit(() -> v.awaitChange(g, Duration.ofSeconds(3)));
            }
            Thread.sleep(300); // the eight are waiting
            long start = System.nanoTime();
            CountDownLatch ran = new CountDownLatch(1);
            virtual.submit(ran::countDown);
            ran.await(10, TimeUnit.SECONDS);
            System.out.println("unrelated task ran after " + (System.nanoTime() - start) / 1_000_000 + " ms");
            release.countDown();
            platform.join();
            virtual.shutdown();
            virtual.awaitTermination(10, TimeUnit.SECONDS);
        } finally {
            SharedVariable.removeKey(key);
        }
    }
}
