package io.shmvar;

import io.shmvar.proto.ProtocolTiming;

import java.time.Duration;

import static io.shmvar.LayoutDescriptor.DEFAULT_CAPACITY;

/**
 * Options for creating and opening a {@link SharedVariable}; {@link #defaults()} gives the defaults. Immutable: each
 * {@code with...} returns a changed copy. The Go twin is {@code shmvar.Options}.
 */
public final class Options {
    /** How long an opener waits for a creator to finish by default (protocol.proto). */
    private static final Duration DEFAULT_INIT_WAIT =
        Duration.ofNanos(ProtocolTiming.INIT_WAIT_DEFAULT_MICROS_VALUE * 1_000L);

    private int capacity = DEFAULT_CAPACITY;
    private int mode = 0600;
    private Duration initWait = DEFAULT_INIT_WAIT;
    private boolean readOnly;
    private boolean anyOwner;
    private boolean anyMode;
    private boolean ephemeral;
    private String type;
    private WaitStrategy wait = WaitStrategy.SPIN_THEN_PARK;

    private Options() {
    }

    public static Options defaults() {
        return new Options();
    }

    private Options copy(java.util.function.Consumer<Options> change) {
        Options o = new Options();
        o.capacity = capacity;
        o.mode = mode;
        o.initWait = initWait;
        o.readOnly = readOnly;
        o.anyOwner = anyOwner;
        o.anyMode = anyMode;
        o.ephemeral = ephemeral;
        o.type = type;
        o.wait = wait;
        change.accept(o);
        return o;
    }

    /** The most bytes an encoded value may take (create only); default 4096. */
    public Options withCapacity(int capacity) {
        return copy(o -> o.capacity = capacity);
    }

    /** The segment's permission bits (create only); default 0600. */
    public Options withMode(int mode) {
        return copy(o -> o.mode = mode);
    }

    /** How long open waits for a creator that has not finished writing the header; default 1s. */
    public Options withInitWait(Duration initWait) {
        return copy(o -> o.initWait = initWait);
    }

    /** Attach read-only (open only); writes then fail. */
    public Options withReadOnly(boolean readOnly) {
        return copy(o -> o.readOnly = readOnly);
    }

    /** Accept a segment owned by another user (open only); by default open refuses it. */
    public Options withAnyOwner(boolean anyOwner) {
        return copy(o -> o.anyOwner = anyOwner);
    }

    /** Accept a world-writable segment (open only), which any user could corrupt; by default refused. */
    public Options withAnyMode(boolean anyMode) {
        return copy(o -> o.anyMode = anyMode);
    }

    /**
     * Mark the segment for removal as soon as it is attached: the kernel frees it when the last process
     * detaches or dies, and no new process can open it by key from then on.
     */
    public Options withEphemeral(boolean ephemeral) {
        return copy(o -> o.ephemeral = ephemeral);
    }

    /** The payload type {@link SharedVariable#openDynamic(int, Options)} requires; null (the default) accepts any. */
    public Options withType(String type) {
        return copy(o -> o.type = type);
    }

    /** How lock waits and {@link SharedVariable#awaitChange} wait; default {@link WaitStrategy#SPIN_THEN_PARK}. */
    public Options withWait(WaitStrategy wait) {
        return copy(o -> o.wait = wait);
    }

    public int capacity() {
        return capacity;
    }

    public WaitStrategy waitStrategy() {
        return wait;
    }

    public int mode() {
        return mode;
    }

    public Duration initWait() {
        return initWait;
    }

    public boolean readOnly() {
        return readOnly;
    }

    public boolean anyOwner() {
        return anyOwner;
    }

    public boolean anyMode() {
        return anyMode;
    }

    public boolean ephemeral() {
        return ephemeral;
    }

    public String type() {
        return type;
    }
}
