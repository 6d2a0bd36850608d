package io.shmvar;

import com.google.protobuf.Message;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicBoolean;

/** One variable's decoded-value cache, keyed by generation. The Go twin is {@code cache.go}. */
final class Cache<T extends Message> {
    /*
     * The last value a variable committed or decoded, and its generation (PROTOCOL.md, "Caching"): messages are
     * immutable, so while the segment's generation still reads cachedGeneration, get and update use cachedValue
     * instead of copying, checking and parsing the slot again. One writer at a time (cacheWriter); a writer clears
     * the value, then sets the generation, then the value (release stores), so a reader that sees the same
     * generation before and after reading a non-null value (acquire loads) has a matching pair.
     */
    private long cachedGeneration;
    private T cachedValue;
    private final AtomicBoolean cacheWriter = new AtomicBoolean();
    private static final VarHandle CACHED_GENERATION;
    private static final VarHandle CACHED_VALUE;

    static {
        try {
            MethodHandles.Lookup lookup = MethodHandles.lookup();
            CACHED_GENERATION = lookup.findVarHandle(Cache.class, "cachedGeneration", long.class);
            CACHED_VALUE = lookup.findVarHandle(Cache.class, "cachedValue", Message.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** The cached value if it is the one committed at {@code generation}, else null. */
    T get(long generation) {
        long g = (long) CACHED_GENERATION.getAcquire(this);
        @SuppressWarnings("unchecked")
        T value = (T) CACHED_VALUE.getAcquire(this);
        return value != null && g == generation && (long) CACHED_GENERATION.getAcquire(this) == g ? value : null;
    }

    /** Caches {@code value} as the one committed at {@code generation}, unless another thread is caching. */
    void put(long generation, T value) {
        if (cacheWriter.compareAndExchangeAcquire(false, true)) {
            return;
        }
        CACHED_VALUE.setRelease(this, null);
        CACHED_GENERATION.setRelease(this, generation);
        CACHED_VALUE.setRelease(this, value);
        cacheWriter.setRelease(false);
    }
}
