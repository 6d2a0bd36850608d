package io.shmvar;

import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import io.shmvar.bench.proto.Blob;
import io.shmvar.bench.proto.Entry;
import io.shmvar.bench.proto.Table;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.UnaryOperator;
import java.util.zip.CRC32C;

/**
 * The Java half of make bench's size_scaling: for each shape and size, an uncontended update, a get right after
 * another attachment's commit (the value cache stale: copy, CRC32C and parse), and beside them the floor (copying the
 * encoded bytes once and computing their CRC32C) and protobuf-java's own encode (into a reused buffer, as a commit
 * does) and parse of the same message. bench-peer sizes does the same in Go, with the same messages.
 */
final class SizeBench {
    /** A small value, a page, a large config, and about as large as the library is meant for. */
    static final int[] SIZES = {64, 4 << 10, 256 << 10, 4 << 20};

    private final long budgetNanos;
    private long sink;

    SizeBench(boolean quick) {
        this.budgetNanos = (quick ? 50 : 300) * 1_000_000L;
    }

    /**
     * Bench runs this once per shape ("bytes" or "fields", then --quick or not), each in a JVM of its own; it prints
     * one JSON object a line, one per size.
     */
    public static void main(String[] args) throws IOException {
        SizeBench b = new SizeBench(Arrays.asList(args).contains("--quick"));
        b.measure(args[0], SIZES[0]); // once unmeasured, so that the JIT has compiled the small sizes' paths
        for (int size : SIZES) {
            Map<String, Object> row = b.measure(args[0], size);
            StringBuilder line = new StringBuilder("{");
            row.forEach((k, v) -> line.append(line.length() > 1 ? "," : "").append('"').append(k).append("\":")
                .append(v instanceof String ? "\"" + v + "\"" : v));
            System.out.println(line.append('}'));
        }
        if (b.sink == 42) {
            System.err.println(); // keeps the measured work alive
        }
    }

    /** A Blob of about {@code size} bytes encoded, never more; its bytes are those Go's blob() makes. */
    static Blob blob(int size) {
        byte[] data = new byte[size];
        for (int i = 0; i < size; i++) {
            data[i] = (byte) (i * 131 + (i >> 8));
        }
        Blob b = Blob.newBuilder().setSeq(1).setData(com.google.protobuf.ByteString.copyFrom(data)).build();
        while (b.getSerializedSize() > size) {
            b = b.toBuilder().setData(b.getData().substring(0, b.getData().size() - (b.getSerializedSize() - size)))
                .build();
        }
        return b;
    }

    /** A Table of about {@code size} bytes encoded, never more, in entries of about 30 bytes, as Go's table(). */
    static Table table(int size) {
        Table.Builder t = Table.newBuilder().setSeq(1);
        int total = t.build().getSerializedSize();
        for (int i = 0; ; i++) {
            Entry e = Entry.newBuilder().setId(i + 1).setName(String.format("key-%06d", i)).setValue(i * 7919L)
                .setWeight(i / 7.0).setEnabled(i % 2 == 0).build();
            int n = e.getSerializedSize();
            n += 1 + CodedOutputStream.computeUInt32SizeNoTag(n);
            if (total + n > size) {
                return t.build();
            }
            t.addEntries(e);
            total += n;
        }
    }

    private Map<String, Object> measure(String shape, int size) throws IOException {
        return shape.equals("bytes")
            ? measure(blob(size), m -> m.toBuilder().setSeq(m.getSeq() + 1).build(), Blob.parser(), shape, size)
            : measure(table(size), m -> m.toBuilder().setSeq(m.getSeq() + 1).build(), Table.parser(), shape, size);
    }

    private <T extends Message> Map<String, Object> measure(T initial, UnaryOperator<T> bump, Parser<T> parser,
                                                            String shape, int size) throws IOException {
        byte[] encoded = initial.toByteArray();
        Map<String, Object> row = new LinkedHashMap<>();
        row.put("bytes", size);
        row.put("shape", shape);
        row.put("encoded_bytes", encoded.length);
        int readerCount = size <= 4 << 10 ? 16 : 4; // each reader's cache goes stale at every commit
        @SuppressWarnings("unchecked")
        T prototype = (T) initial.getDefaultInstanceForType();
        SharedMemoryVariable<T> w = create(prototype, encoded.length + 4096);
        List<SharedMemoryVariable<T>> readers = new ArrayList<>();
        try {
            w.set(initial);
            for (int i = 0; i < readerCount; i++) {
                readers.add(SharedVariable.open(w.key(), prototype, Options.defaults().withReadOnly(true)));
            }
            int ops = Math.max(1, (16 << 10) / size);
            byte[] dst = new byte[encoded.length];
            CRC32C crc = new CRC32C();
            row.put("java_floor_ns", perOp(ops, () -> {
                for (int i = 0; i < ops; i++) {
                    System.arraycopy(encoded, 0, dst, 0, dst.length);
                    crc.reset();
                    crc.update(dst, 0, dst.length);
                    sink += crc.getValue();
                }
            }));
            row.put("java_update_ns", perOp(ops, () -> {
                for (int i = 0; i < ops; i++) {
                    w.update(bump);
                }
            }));
            row.put("java_get_uncached_ns", perRound(() -> {
                w.update(bump); // every reader's cached value is now stale
                long start = System.nanoTime();
                for (SharedMemoryVariable<T> r : readers) {
                    sink += r.get() == null ? 1 : 0;
                }
                return (double) (System.nanoTime() - start) / readers.size();
            }));
            byte[] buf = new byte[encoded.length + 64];
            @SuppressWarnings("unchecked")
            T[] value = (T[]) new Message[] {initial};
            row.put("java_encode_ns", perOp(ops, () -> {
                for (int i = 0; i < ops; i++) {
                    value[0] = bump.apply(value[0]);
                    CodedOutputStream out = CodedOutputStream.newInstance(buf);
                    try {
                        value[0].writeTo(out);
                    } catch (IOException e) {
                        throw new IllegalStateException(e);
                    }
                    sink += out.getTotalBytesWritten();
                }
            }));
            row.put("java_parse_ns", perOp(ops, () -> {
                for (int i = 0; i < ops; i++) {
                    try {
                        sink += parser.parseFrom(encoded).getSerializedSize();
                    } catch (IOException e) {
                        throw new IllegalStateException(e);
                    }
                }
            }));
            // A commit of a value with strings over 4 KiB also looks for unpaired surrogates, string by string
            row.put("java_string_check_ns", perOp(ops, () -> {
                for (int i = 0; i < ops; i++) {
                    sink += SharedVariable.invalidUtf8Field(value[0]) == null ? 1 : 0;
                }
            }));
            if (!readers.get(0).get().equals(w.get())) {
                throw new IllegalStateException(shape + " " + size + ": a reader got another value than the writer's");
            }
            row.put("readers", readerCount);
        } finally {
            for (SharedMemoryVariable<T> r : readers) {
                r.close();
            }
            w.remove();
        }
        return row;
    }

    /** Times rounds of {@code ops} operations; the median per operation (see {@link #perRound}). */
    private double perOp(int ops, Runnable round) {
        return perRound(() -> {
            long start = System.nanoTime();
            round.run();
            return (double) (System.nanoTime() - start) / ops;
        });
    }

    /**
     * Runs {@code round} for a quarter of the budget unmeasured (the JIT compiles it meanwhile), then for the budget
     * (at least 5 rounds), and returns the median of what it returned.
     */
    private double perRound(java.util.function.DoubleSupplier round) {
        System.gc(); // the garbage of the last measurement is not this one's
        for (long warm = System.nanoTime() + budgetNanos / 4; System.nanoTime() - warm < 0; ) {
            round.getAsDouble();
        }
        double[] samples = new double[16];
        int n = 0;
        for (long end = System.nanoTime() + budgetNanos; n < 5 || System.nanoTime() - end < 0; ) {
            if (n == samples.length) {
                samples = Arrays.copyOf(samples, 2 * n);
            }
            samples[n++] = round.getAsDouble();
        }
        Arrays.sort(samples, 0, n);
        return Math.round(samples[n / 2] * 10) / 10.0;
    }

    /** A variable of {@code prototype}'s type with room for {@code capacity} bytes under a free 0x5c...... key. */
    private static <T extends Message> SharedMemoryVariable<T> create(T prototype, int capacity) {
        while (true) {
            try {
                return SharedVariable.create(0x5c000000 | ThreadLocalRandom.current().nextInt(0x1000000), prototype,
                    Options.defaults().withCapacity(capacity));
            } catch (ShmException e) {
                if (e.errno() != Native.EEXIST) {
                    throw e;
                }
            }
        }
    }
}
