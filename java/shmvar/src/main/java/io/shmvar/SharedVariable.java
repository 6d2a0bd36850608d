package io.shmvar;

import com.google.protobuf.Descriptors;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import io.shmvar.proto.SegmentDescriptor;

import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.UnaryOperator;

/**
 * A protobuf value of type {@code T} shared with other processes: any process may read it without a lock, and one
 * at a time updates it. The Go twin is {@code shmvar.Variable[T]}.
 *
 * <p>On one host the value lives in shared memory ({@link SharedMemoryVariable}: a System V segment by key, or a
 * mapped file by path); other backings (etcd, in the {@code shmvar-etcd} module) are reached by address, so that a
 * program written against this interface moves by changing the address only:
 *
 * <pre>{@code
 * try (SharedVariable<Counter> counter = SharedVariable.openOrCreate(URI.create("shm:0x5eed"),
 *         Counter.getDefaultInstance(), Options.defaults())) {
 *     counter.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
 *     Counter now = counter.get();  // no lock
 * }
 * }</pre>
 *
 * <p>Every failure is a {@link ShmException} naming the function, errno and key. Safe for use by several threads.
 */
public interface SharedVariable<T extends Message> extends AutoCloseable {

    /** The last committed value; takes no lock. */
    T get();

    /** The last committed value exactly as it is encoded, after the same checks as {@link #get()}. */
    byte[] getEncoded();

    /** Commits {@code value}, waiting for exclusive access as long as it takes. */
    void set(T value);

    /**
     * Commits {@code fn(current)} exclusively and returns it: no other update commits between the read of
     * {@code current} and the commit. When {@code fn} throws, nothing is committed and the exception propagates.
     */
    T update(UnaryOperator<T> fn);

    /** {@link #update} that gives up with {@link ShmException.Reason#TIMEOUT} after {@code timeout}. */
    T tryUpdate(UnaryOperator<T> fn, Duration timeout);

    /** The number of values committed since creation. */
    long generation();

    /**
     * Waits until the generation moves past {@code after}, or {@code timeout} passes, and returns the generation it
     * saw; throws {@link ShmException.Reason#TIMEOUT} if it did not move.
     */
    long awaitChange(long after, Duration timeout);

    /** The schema stored with the value at creation: its type name, the files that define it, the capacity. */
    SegmentDescriptor descriptor();

    /** The type values are decoded as. */
    Descriptors.Descriptor messageDescriptor();

    /** The most bytes an encoded value may take. */
    int capacity();

    /** Counters for metrics: the variable's (all processes') and this attachment's. */
    Stats stats();

    /** Removes the variable for everyone (other attachments keep what they mapped until they close) and closes it. */
    void remove();

    /** Detaches; the variable stays for other processes. Operations in flight end first; later ones throw CLOSED. */
    @Override
    void close();

    /**
     * Counters for metrics (the Go twin is {@code shmvar.Stats}). {@code generation}, {@code contendedAcquisitions}
     * and {@code takeovers} count for every process attached; {@code commits} and {@code lockWait} for this one.
     */
    record Stats(long generation, long commits, long contendedAcquisitions, long takeovers, Duration lockWait) {
    }

    /** Creates a System V segment under {@code key} holding the empty value of {@code prototype}'s type. */
    static <T extends Message> SharedMemoryVariable<T> create(int key, T prototype) {
        return SharedMemoryVariable.create(key, prototype, Options.defaults());
    }

    /** Creates a System V segment under {@code key}; fails with errno EEXIST if the key is taken. */
    static <T extends Message> SharedMemoryVariable<T> create(int key, T prototype, Options options) {
        return SharedMemoryVariable.create(key, prototype, options);
    }

    /** Opens the System V segment under {@code key} and checks that it holds {@code prototype}'s type. */
    static <T extends Message> SharedMemoryVariable<T> open(int key, T prototype) {
        return SharedMemoryVariable.open(key, prototype, Options.defaults());
    }

    /** Opens the System V segment under {@code key} and checks that it holds {@code prototype}'s type. */
    static <T extends Message> SharedMemoryVariable<T> open(int key, T prototype, Options options) {
        return SharedMemoryVariable.open(key, prototype, options);
    }

    /**
     * Opens the segment under {@code key} if it exists (and holds {@code prototype}'s type), else creates it; safe
     * when several processes call it at once: one creates, the others open what it created.
     */
    static <T extends Message> SharedMemoryVariable<T> openOrCreate(int key, T prototype, Options options) {
        return SharedMemoryVariable.openOrCreate(key, prototype, options);
    }

    /** Opens the segment under {@code key} and decodes values with the schema stored in it. */
    static SharedMemoryVariable<DynamicMessage> openDynamic(int key, Options options) {
        return SharedMemoryVariable.openDynamic(key, options);
    }

    /** Creates the file at {@code path}, laid out exactly as a segment, and maps it; EEXIST if it exists. */
    static <T extends Message> SharedMemoryVariable<T> createFile(Path path, T prototype, Options options) {
        return SharedMemoryVariable.createFile(path, prototype, options);
    }

    /** Maps the file at {@code path} and checks that it holds {@code prototype}'s type. */
    static <T extends Message> SharedMemoryVariable<T> openFile(Path path, T prototype, Options options) {
        return SharedMemoryVariable.openFile(path, prototype, options);
    }

    /** {@link #openOrCreate(int, Message, Options)} for a mapped file. */
    static <T extends Message> SharedMemoryVariable<T> openOrCreateFile(Path path, T prototype, Options options) {
        return SharedMemoryVariable.openOrCreateFile(path, prototype, options);
    }

    /** Maps the file at {@code path} and decodes values with the schema stored in it. */
    static SharedMemoryVariable<DynamicMessage> openDynamicFile(Path path, Options options) {
        return SharedMemoryVariable.openDynamicFile(path, options);
    }

    /**
     * Creates the variable at {@code address}: {@code shm:KEY} (a System V key, as the commands take it),
     * {@code file:PATH}, or the scheme of a provider on the class path (for example {@code etcd://host:port/name}).
     */
    static <T extends Message> SharedVariable<T> create(URI address, T prototype, Options options) {
        return Addresses.provider(address).create(address, prototype, options);
    }

    /** Opens the variable at {@code address} (see {@link #create(URI, Message, Options)}). */
    static <T extends Message> SharedVariable<T> open(URI address, T prototype, Options options) {
        return Addresses.provider(address).open(address, prototype, options);
    }

    /** Opens the variable at {@code address}, or creates it if there is none (see {@link #openOrCreate(int, Message, Options)}). */
    static <T extends Message> SharedVariable<T> openOrCreate(URI address, T prototype, Options options) {
        return Addresses.provider(address).openOrCreate(address, prototype, options);
    }

    /** Opens the variable at {@code address} and decodes values with the schema stored with it. */
    static SharedVariable<DynamicMessage> openDynamic(URI address, Options options) {
        return Addresses.provider(address).openDynamic(address, options);
    }

    /**
     * Removes the segment under {@code key} and its semaphore set without validating them, for segments too damaged
     * to open; also removes a semaphore set left alone under the key. Fails with ENOENT only if neither exists.
     */
    static void removeKey(int key) {
        SharedMemoryVariable.removeKey(key);
    }

    /**
     * The full name of a field of {@code value} holding a string that readers would refuse once encoded (an unpaired
     * surrogate in a proto3 string), or null: what {@link #set} refuses with {@code INVALID_ARGUMENT}.
     */
    static String invalidUtf8Field(Message value) {
        return Slots.invalidUtf8Field(value);
    }
}
