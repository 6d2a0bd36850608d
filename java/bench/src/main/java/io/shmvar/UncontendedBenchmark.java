package io.shmvar;

import io.shmvar.examples.Counter;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

/** JMH: the uncontended cost of update and get of a Counter, run by make bench (Bench). */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class UncontendedBenchmark {
    private static final UnaryOperator<Counter> INCREMENT = c -> c.toBuilder().setValue(c.getValue() + 1).build();

    private SharedMemoryVariable<Counter> counter;
    /** A second attachment of the same segment, whose commits leave counter's cache stale. */
    private SharedMemoryVariable<Counter> other;

    @Setup(Level.Trial)
    public void create() {
        while (true) {
            try {
                counter = SharedVariable.create(0x5c000000 | ThreadLocalRandom.current().nextInt(0x1000000),
                    Counter.getDefaultInstance());
                break;
            } catch (ShmException e) {
                if (e.errno() != Native.EEXIST) {
                    throw e;
                }
            }
        }
        counter.set(Counter.newBuilder().setValue(12345).setLastWriter("bench").build());
        other = SharedVariable.open(counter.key(), Counter.getDefaultInstance());
    }

    @TearDown(Level.Trial)
    public void remove() {
        other.close();
        counter.remove();
    }

    @Benchmark
    public Counter update() {
        return counter.update(INCREMENT);
    }

    private boolean flip;

    /**
     * An update right after another attachment's commit, so its cache is stale: copy, check and parse included, as
     * in a ping-pong (but without the cache-line transfers between cores, as both attachments run on one thread).
     */
    @Benchmark
    public Counter updateUncached() {
        flip = !flip;
        return (flip ? counter : other).update(INCREMENT);
    }

    @Benchmark
    public Counter get() {
        return counter.get();
    }
}
