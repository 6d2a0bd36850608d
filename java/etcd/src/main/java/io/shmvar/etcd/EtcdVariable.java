package io.shmvar.etcd;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.ClientBuilder;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.Watch;
import io.etcd.jetcd.common.exception.CompactedException;
import io.etcd.jetcd.common.exception.ErrorCode;
import io.etcd.jetcd.common.exception.EtcdException;
import io.etcd.jetcd.kv.GetResponse;
import io.etcd.jetcd.kv.TxnResponse;
import io.etcd.jetcd.op.Cmp;
import io.etcd.jetcd.op.CmpTarget;
import io.etcd.jetcd.op.Op;
import io.etcd.jetcd.options.DeleteOption;
import io.etcd.jetcd.options.GetOption;
import io.etcd.jetcd.options.PutOption;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.watch.WatchEvent;
import io.etcd.jetcd.watch.WatchResponse;
import io.shmvar.Remote;
import io.shmvar.SharedVariable;
import io.shmvar.ShmException;
import io.shmvar.ShmException.Reason;
import io.shmvar.proto.SegmentDescriptor;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.UnaryOperator;

/**
 * A protobuf value of type {@code T} kept in etcd: a {@link SharedVariable}, reached by
 * {@code SharedVariable.open(URI.create("etcd://..."), ...)} once this module is on the class path
 * ({@link EtcdProvider}), or by the static methods here, which take the etcd options. The representation (keys, schema record, transactions, generation) is proto/ETCD.md, shared with the Go twin
 * {@code etcdvar.Var}. An address is {@code etcd://host:port[,host:port...]/prefix/name}.
 *
 * <p>Updates are compare-and-swap transactions on the value key's revision, retried on conflict ({@link #conflicts()}
 * counts the retries); the updates of one variable object run one at a time. Errors are {@link ShmException}s with
 * the same reasons as for segments; "exists" and "no such variable" are {@code NATIVE} with errno EEXIST or ENOENT;
 * no endpoint answering is {@link Remote#isUnavailable}. Thread-safe.
 */
public final class EtcdVariable<T extends Message> implements SharedVariable<T> {
    /** A request unanswered after this long fails as unavailable, unless {@link Options#withRequestTimeout}. */
    public static final Duration DEFAULT_REQUEST_TIMEOUT = Duration.ofSeconds(5);
    /** The largest capacity: etcd refuses requests above its --max-request-bytes, 1.5 MiB by default. */
    public static final int MAX_CAPACITY = 1536 * 1024 - 4096;
    private static final int DEFAULT_CAPACITY = 4096;

    /** Options for {@link #create} and {@link #open}; immutable, {@link #defaults()} gives the defaults. */
    public static final class Options {
        private final int capacity;
        private final boolean readOnly;
        private final boolean serializable;
        private final Duration requestTimeout;
        private final String user;
        private final String password;
        private final String caFile;
        private final String certFile;
        private final String keyFile;
        private final java.util.function.Consumer<ShmException> onUnavailable;

        private Options(int capacity, boolean readOnly, boolean serializable, Duration requestTimeout, String user,
                        String password, String caFile, String certFile, String keyFile,
                        java.util.function.Consumer<ShmException> onUnavailable) {
            this.capacity = capacity;
            this.readOnly = readOnly;
            this.serializable = serializable;
            this.requestTimeout = requestTimeout;
            this.user = user;
            this.password = password;
            this.caFile = caFile;
            this.certFile = certFile;
            this.keyFile = keyFile;
            this.onUnavailable = onUnavailable;
        }

        public static Options defaults() {
            return new Options(DEFAULT_CAPACITY, false, false, DEFAULT_REQUEST_TIMEOUT, null, null, null, null, null, null);
        }

        /** The most bytes an encoded value may take (create only), 1..{@link #MAX_CAPACITY}; default 4096. */
        public Options withCapacity(int capacity) {
            return new Options(capacity, readOnly, serializable, requestTimeout, user, password, caFile, certFile, keyFile, onUnavailable);
        }

        /** Refuse every write through this object. */
        public Options withReadOnly(boolean readOnly) {
            return new Options(capacity, readOnly, serializable, requestTimeout, user, password, caFile, certFile, keyFile, onUnavailable);
        }

        /** Reads answered by any member, possibly stale; by default reads are linearizable. */
        public Options withSerializable(boolean serializable) {
            return new Options(capacity, readOnly, serializable, requestTimeout, user, password, caFile, certFile, keyFile, onUnavailable);
        }

        /** Each request unanswered after this long fails as unavailable; default 5 s. */
        public Options withRequestTimeout(Duration requestTimeout) {
            return new Options(capacity, readOnly, serializable, requestTimeout, user, password, caFile, certFile, keyFile, onUnavailable);
        }

        /** etcd auth: the user and password to log in with. */
        public Options withCredentials(String user, String password) {
            return new Options(capacity, readOnly, serializable, requestTimeout, user, password, caFile, certFile, keyFile, onUnavailable);
        }

        /** TLS: the CA that signed the members' certificates, and this client's certificate and key (or nulls). */
        public Options withTls(String caFile, String certFile, String keyFile) {
            return new Options(capacity, readOnly, serializable, requestTimeout, user, password, caFile, certFile, keyFile, onUnavailable);
        }

        /**
         * Called each time an update or a wait finds no endpoint answering and keeps trying (they try until they
         * commit, or their timeout ends): commands print it.
         */
        public Options withOnUnavailable(java.util.function.Consumer<ShmException> onUnavailable) {
            return new Options(capacity, readOnly, serializable, requestTimeout, user, password, caFile, certFile, keyFile, onUnavailable);
        }

        public int capacity() {
            return capacity;
        }
    }

    /** An address split into its endpoints and path (proto/ETCD.md, "Address"). */
    record Address(List<String> endpoints, String path, String text) {
        static Address parse(String s, String op) {
            String usage = "write etcd://host:port[,host:port...]/prefix/name";
            if (s == null || !s.startsWith("etcd://")) {
                throw Remote.error(op, String.valueOf(s), Reason.INVALID_ARGUMENT, "address does not start with etcd://: " + usage);
            }
            String rest = s.substring("etcd://".length());
            int slash = rest.indexOf('/');
            if (slash <= 0) {
                throw Remote.error(op, s, Reason.INVALID_ARGUMENT, usage);
            }
            List<String> endpoints = new ArrayList<>();
            for (String h : rest.substring(0, slash).split(",", -1)) {
                int colon = h.lastIndexOf(':');
                if (colon <= 0 || colon == h.length() - 1 || !h.substring(colon + 1).chars().allMatch(Character::isDigit)) {
                    throw Remote.error(op, s, Reason.INVALID_ARGUMENT, "endpoint \"" + h + "\" is not host:port");
                }
                endpoints.add(h);
            }
            String path = rest.substring(slash);
            String trimmed = path.substring(1);
            if (trimmed.isEmpty()) {
                throw Remote.error(op, s, Reason.INVALID_ARGUMENT, "no variable name after the endpoints");
            }
            for (String seg : trimmed.split("/", -1)) {
                if (seg.isEmpty()) {
                    throw Remote.error(op, s, Reason.INVALID_ARGUMENT, "path \"" + path + "\" has an empty segment");
                }
                if (seg.startsWith(".")) {
                    throw Remote.error(op, s, Reason.INVALID_ARGUMENT, "path \"" + path + "\": segment \"" + seg
                        + "\" starts with \".\", which is kept for the variable's own keys");
                }
                if (seg.chars().anyMatch(c -> c < 0x21 || c == 0x7f)) {
                    throw Remote.error(op, s, Reason.INVALID_ARGUMENT, "path \"" + path + "\" has a space or control character");
                }
            }
            return new Address(List.copyOf(endpoints), path, s);
        }

        ByteSequence schemaKey() {
            return bytes(path + "/.schema");
        }

        ByteSequence valueKey() {
            return bytes(path + "/.value");
        }

        ByteSequence ownKeys() {
            return bytes(path + "/.");
        }

        ByteSequence writerKey(String id) {
            return bytes(path + "/.writers/" + id);
        }
    }

    private static ByteSequence bytes(String s) {
        return ByteSequence.from(s, StandardCharsets.UTF_8);
    }

    private final Address address;
    private final Options options;
    private final Client client;
    private final Remote.Codec codec;
    private final long schemaRevision;
    private final ByteSequence writer;
    private final ReentrantLock turn = new ReentrantLock(); // one update at a time: the writer record is per object
    private long sequence; // under turn
    private long writerVersion; // the writer record's version, as far as this object knows; under turn
    private final AtomicLong conflicts = new AtomicLong();
    private final AtomicLong commits = new AtomicLong();
    private volatile boolean closed;
    private final List<Watch.Watcher> watchers = new ArrayList<>();

    // The last value read or committed, with its key's mod revision and version (proto/ETCD.md, "Caching").
    private record Cached(long revision, long version, Message value) {
    }

    private volatile Cached cache;

    private EtcdVariable(Address address, Options options, Client client, Remote.Codec codec, long schemaRevision,
                         Cached cache) {
        this.address = address;
        this.options = options;
        this.client = client;
        this.codec = codec;
        this.schemaRevision = schemaRevision;
        this.cache = cache;
        byte[] id = new byte[8];
        new SecureRandom().nextBytes(id);
        StringBuilder hex = new StringBuilder();
        for (byte b : id) {
            hex.append(String.format("%02x", b));
        }
        this.writer = address.writerKey(hex.toString());
    }

    /**
     * Creates the variable at {@code address} holding the empty value of {@code prototype}'s type, with its schema,
     * in one transaction that fails (errno EEXIST) when either key exists.
     */
    @SuppressWarnings("unchecked")
    public static <T extends Message> EtcdVariable<T> create(String address, T prototype, Options options) {
        Address a = Address.parse(address, "create");
        if (options.capacity < 1 || options.capacity > MAX_CAPACITY) {
            throw Remote.error("create", address, Reason.INVALID_ARGUMENT, "capacity=" + options.capacity
                + " outside 1.." + MAX_CAPACITY + " (etcd's default request limit is 1.5 MiB)");
        }
        SegmentDescriptor record;
        try {
            record = Remote.describe(prototype.getDescriptorForType(), options.capacity);
        } catch (ShmException e) {
            throw Remote.error("create", address, e.reason(), e.getMessage());
        }
        Remote.Codec codec = Remote.Codec.of(record, prototype, "create", address);
        Client client = connect(a, options);
        try {
            TxnResponse r = call(client.getKVClient().txn()
                .If(new Cmp(a.schemaKey(), Cmp.Op.EQUAL, CmpTarget.createRevision(0)),
                    new Cmp(a.valueKey(), Cmp.Op.EQUAL, CmpTarget.createRevision(0)))
                .Then(Op.put(a.schemaKey(), ByteSequence.from(record.toByteString()), PutOption.DEFAULT),
                    Op.put(a.valueKey(), ByteSequence.EMPTY, PutOption.DEFAULT))
                .commit(), options, "create", address);
            if (!r.isSucceeded()) {
                throw Remote.errno("create", address, Remote.EEXIST, "remove it with 'rm --etcd " + address + "'");
            }
            long rev = r.getHeader().getRevision();
            return (EtcdVariable<T>) new EtcdVariable<>(a, options, client, codec, rev,
                new Cached(rev, 1, prototype.getDefaultInstanceForType()));
        } catch (RuntimeException e) {
            client.close();
            throw e;
        }
    }

    /** Opens the variable at {@code address} and checks it holds {@code prototype}'s type (else TYPE_MISMATCH). */
    @SuppressWarnings("unchecked")
    public static <T extends Message> EtcdVariable<T> open(String address, T prototype, Options options) {
        return (EtcdVariable<T>) load(address, prototype, options);
    }

    /** Opens the variable at {@code address} and decodes its values with the schema stored with it. */
    @SuppressWarnings("unchecked")
    public static EtcdVariable<DynamicMessage> openDynamic(String address, Options options) {
        return (EtcdVariable<DynamicMessage>) load(address, null, options);
    }

    private static EtcdVariable<?> load(String address, Message prototype, Options options) {
        Address a = Address.parse(address, "open");
        Client client = connect(a, options);
        try {
            TxnResponse r = call(client.getKVClient().txn()
                .Then(Op.get(a.schemaKey(), GetOption.DEFAULT), Op.get(a.valueKey(), GetOption.DEFAULT))
                .commit(), options, "open", address);
            List<KeyValue> schema = r.getGetResponses().get(0).getKvs();
            List<KeyValue> value = r.getGetResponses().get(1).getKvs();
            if (schema.isEmpty() && value.isEmpty()) {
                throw Remote.errno("open", address, Remote.ENOENT, "create it with 'create --etcd " + address + "'");
            } else if (schema.isEmpty() || value.isEmpty()) {
                throw Remote.error("open", address, Reason.CORRUPT, (schema.isEmpty() ? "value" : "schema")
                    + " key exists without the " + (schema.isEmpty() ? "schema" : "value") + " key");
            }
            SegmentDescriptor record;
            try {
                record = SegmentDescriptor.parseFrom(schema.get(0).getValue().getBytes());
            } catch (InvalidProtocolBufferException e) {
                throw Remote.error("open", address, Reason.CORRUPT, "schema record does not decode: " + e.getMessage());
            }
            if (record.getCapacity() < 1 || record.getCapacity() > MAX_CAPACITY) {
                throw Remote.error("open", address, Reason.CORRUPT, "schema record capacity=" + record.getCapacity()
                    + " outside 1.." + MAX_CAPACITY);
            }
            Remote.Codec codec = Remote.Codec.of(record, prototype, "open", address);
            KeyValue kv = value.get(0);
            Message current = codec.decode(kv.getValue().getBytes(), "open", address);
            return new EtcdVariable<>(a, options, client, codec, schema.get(0).getCreateRevision(),
                new Cached(kv.getModRevision(), kv.getVersion(), current));
        } catch (RuntimeException e) {
            client.close();
            throw e;
        }
    }

    /** One variable found by {@link #list}. */
    public record Listed(String address, String type, long capacity, long generation, String creator) {
    }

    /**
     * The variables under the prefix of {@code address} ({@code etcd://host:port,.../prefix}, or
     * {@code etcd://host:port/} for all), in path order: the keys ending in /.schema (proto/ETCD.md), with the
     * generation of their value keys. One range request.
     */
    public static List<Listed> list(String address, Options options) {
        if (address == null || !address.startsWith("etcd://") || address.indexOf('/', "etcd://".length()) < 0) {
            throw Remote.error("ls", String.valueOf(address), Reason.INVALID_ARGUMENT, "write etcd://host:port[,host:port...]/prefix");
        }
        String rest = address.substring("etcd://".length());
        String hosts = rest.substring(0, rest.indexOf('/'));
        String path = rest.substring(rest.indexOf('/'));
        while (path.length() > 1 && path.endsWith("/")) {
            path = path.substring(0, path.length() - 1);
        }
        // Parse the endpoints and check the prefix as a variable's path would be checked.
        Address a = Address.parse("etcd://" + hosts + (path.equals("/") ? "/x" : path), "ls");
        String prefix = path.equals("/") ? "/" : path + "/";
        try (Client client = connect(a, options)) {
            GetResponse r = call(client.getKVClient().get(bytes(prefix), GetOption.builder().isPrefix(true).build()),
                options, "ls", address);
            java.util.Map<String, Long> versions = new java.util.HashMap<>();
            java.util.TreeMap<String, byte[]> schemas = new java.util.TreeMap<>();
            for (KeyValue kv : r.getKvs()) {
                String k = kv.getKey().toString(StandardCharsets.UTF_8);
                if (k.endsWith("/.schema")) {
                    schemas.put(k.substring(0, k.length() - "/.schema".length()), kv.getValue().getBytes());
                } else if (k.endsWith("/.value")) {
                    versions.put(k.substring(0, k.length() - "/.value".length()), kv.getVersion());
                }
            }
            List<Listed> out = new ArrayList<>();
            schemas.forEach((p, raw) -> {
                SegmentDescriptor d;
                try {
                    d = SegmentDescriptor.parseFrom(raw);
                } catch (InvalidProtocolBufferException e) {
                    d = SegmentDescriptor.getDefaultInstance();
                }
                out.add(new Listed("etcd://" + hosts + p, d.getMessageType(), d.getCapacity(),
                    Math.max(0, versions.getOrDefault(p, 0L) - 1), d.getCreator()));
            });
            return out;
        }
    }

    /** Deletes the variable at {@code address}: its value, schema and writer records (errno ENOENT if none). */
    public static void remove(String address, Options options) {
        Address a = Address.parse(address, "remove");
        try (Client client = connect(a, options)) {
            removeWith(client, a, options);
        }
    }

    private static void removeWith(Client client, Address a, Options options) {
        var r = call(client.getKVClient().delete(a.ownKeys(), DeleteOption.builder().isPrefix(true).build()),
            options, "remove", a.text());
        if (r.getDeleted() == 0) {
            throw Remote.errno("remove", a.text(), Remote.ENOENT, "");
        }
    }

    private static Client connect(Address a, Options options) {
        ClientBuilder b = Client.builder()
            .endpoints(a.endpoints().stream().map(e -> "http" + (tls(options) ? "s" : "") + "://" + e).toArray(String[]::new))
            .connectTimeout(options.requestTimeout)
            .keepaliveTime(Duration.ofSeconds(2))
            .keepaliveTimeout(Duration.ofSeconds(2));
        if (options.user != null) {
            b.user(bytes(options.user)).password(bytes(options.password == null ? "" : options.password));
        }
        if (tls(options)) {
            try {
                b.sslContext(ssl -> {
                    if (options.caFile != null) {
                        ssl.trustManager(new File(options.caFile));
                    }
                    if (options.certFile != null || options.keyFile != null) {
                        ssl.keyManager(new File(options.certFile), new File(options.keyFile));
                    }
                });
            } catch (Exception e) {
                throw Remote.error("connect", a.text(), Reason.INVALID_ARGUMENT, "TLS: " + e.getMessage());
            }
        }
        try {
            return b.build();
        } catch (RuntimeException e) {
            throw Remote.error("connect", a.text(), Reason.INVALID_ARGUMENT, String.valueOf(e.getMessage()));
        }
    }

    private static boolean tls(Options options) {
        return options.caFile != null || options.certFile != null || options.keyFile != null;
    }

    /**
     * Waits for {@code future} at most the request timeout (or until {@code deadline}, System.nanoTime, if earlier
     * and non-zero) and maps its failure onto ShmException.
     */
    private static <R> R call(CompletableFuture<R> future, Options options, String op, String address) {
        return call(future, options, op, address, 0);
    }

    private static <R> R call(CompletableFuture<R> future, Options options, String op, String address, long deadline) {
        long wait = options.requestTimeout.toNanos();
        boolean callers = false;
        if (deadline != 0 && deadline - System.nanoTime() < wait) {
            wait = Math.max(0, deadline - System.nanoTime());
            callers = true;
        }
        try {
            return future.get(wait, TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            future.cancel(true);
            if (callers) {
                throw Remote.error(op, address, Reason.TIMEOUT, "no answer within the timeout");
            }
            throw Remote.unavailable(op, address, "no endpoint answered within " + options.requestTimeout.toMillis() + " ms");
        } catch (InterruptedException e) {
            future.cancel(true);
            Thread.currentThread().interrupt();
            throw Remote.error(op, address, Reason.INTERRUPTED, "");
        } catch (ExecutionException | CancellationException e) {
            throw classify(op, address, e.getCause() != null ? e.getCause() : e);
        }
    }

    /**
     * Maps a failed request onto the protocol's reasons. jetcd reports some refusals as its EtcdException and others
     * as gRPC's StatusRuntimeException, so the whole cause chain's codes and texts are read.
     */
    private static ShmException classify(String op, String address, Throwable e) {
        StringBuilder all = new StringBuilder();
        ErrorCode code = null;
        for (Throwable t = e; t != null && all.length() < 4096; t = t.getCause()) {
            all.append(t.getMessage()).append(' ');
            if (t instanceof EtcdException ee && code == null) {
                code = ee.getErrorCode();
            }
        }
        String text = all.toString();
        String message = String.valueOf(e.getMessage());
        if (code == ErrorCode.RESOURCE_EXHAUSTED || text.contains("request is too large") || text.contains("RESOURCE_EXHAUSTED")) {
            return Remote.error(op, address, Reason.TOO_LARGE, "the server refused the request as too large "
                + "(etcd's --max-request-bytes, 1.5 MiB by default): " + message);
        }
        if (code == ErrorCode.PERMISSION_DENIED || code == ErrorCode.UNAUTHENTICATED || text.contains("PERMISSION_DENIED")
            || text.contains("UNAUTHENTICATED") || text.contains("permission denied") || text.contains("authentication failed")
            || text.contains("user name is empty") || text.contains("invalid auth token")) {
            return Remote.error(op, address, Reason.PERMISSION, "etcd refused: " + message);
        }
        return Remote.unavailable(op, address, message);
    }

    public String address() {
        return address.text();
    }

    /** The schema record stored at creation. */
    public SegmentDescriptor descriptor() {
        return codec.record();
    }

    /** The type values are decoded as. */
    public Descriptors.Descriptor messageDescriptor() {
        return codec.type();
    }

    /** The most bytes an encoded value may take. */
    public int capacity() {
        return (int) codec.record().getCapacity();
    }

    /** How many commits found the value changed since they read it and were retried (compare-and-swap). */
    public long conflicts() {
        return conflicts.get();
    }

    /**
     * Counters for metrics: the generation last seen by this object (no request is made), its commits, and its
     * compare-and-swap conflicts in place of contended acquisitions; there is no lock, so no takeover and no lock
     * wait.
     */
    @Override
    public Stats stats() {
        Cached c = cache;
        return new Stats(c == null ? 0 : c.version - 1, commits.get(), conflicts.get(), 0, Duration.ZERO);
    }

    private void checkOpen(String op) {
        if (closed) {
            throw Remote.error(op, address.text(), Reason.CLOSED, "");
        }
    }

    private GetOption readOption(boolean keysOnly) {
        return GetOption.builder().withSerializable(options.serializable).withKeysOnly(keysOnly).build();
    }

    /** Reads the value key; ENOENT when the variable is gone or was created again. */
    private KeyValue read(String op, boolean keysOnly, long deadline, long[] header) {
        GetResponse r = call(client.getKVClient().get(address.valueKey(), readOption(keysOnly)), options, op,
            address.text(), deadline);
        if (r.getKvs().isEmpty() || r.getKvs().get(0).getCreateRevision() < schemaRevision) {
            throw Remote.errno(op, address.text(), Remote.ENOENT, "the variable was removed");
        }
        if (header != null) {
            header[0] = r.getHeader().getRevision();
        }
        return r.getKvs().get(0);
    }

    private Message remember(KeyValue kv, String op) {
        Cached c = cache;
        if (c != null && c.revision == kv.getModRevision()) {
            return c.value;
        }
        Message m = codec.decode(kv.getValue().getBytes(), op, address.text());
        keep(m, kv.getModRevision(), kv.getVersion());
        return m;
    }

    private synchronized void keep(Message m, long revision, long version) {
        Cached c = cache;
        if (c == null || revision > c.revision) {
            cache = new Cached(revision, version, m);
        }
    }

    /** The last committed value: a linearizable read (serializable when asked for), decoded unless cached. */
    @SuppressWarnings("unchecked")
    public T get() {
        checkOpen("get");
        return (T) remember(read("get", false, 0, null), "get");
    }

    /** The last committed value exactly as stored, after checking that it decodes. */
    public byte[] getEncoded() {
        checkOpen("get");
        KeyValue kv = read("get", false, 0, null);
        remember(kv, "get");
        return kv.getValue().getBytes();
    }

    /** The number of values committed since creation: the value key's version less one. */
    public long generation() {
        checkOpen("generation");
        return read("generation", true, 0, null).getVersion() - 1;
    }

    /** Commits {@code value}, whatever the current one is. */
    public void set(T value) {
        update("set", c -> value, false, 0);
    }

    /**
     * Commits {@code fn(current)} and returns it: a transaction that succeeds only if the value key still has the
     * revision read; otherwise {@code fn} runs again on the newer value. If {@code fn} throws, nothing is committed.
     * While no endpoint answers it keeps trying.
     */
    public T update(UnaryOperator<T> fn) {
        return update("update", fn, true, 0);
    }

    /** {@link #update} that gives up with TIMEOUT when no commit succeeds within {@code timeout}. */
    public T tryUpdate(UnaryOperator<T> fn, Duration timeout) {
        return update("update", fn, true, System.nanoTime() + Math.max(1, timeout.toNanos()));
    }

    @SuppressWarnings("unchecked")
    private T update(String op, UnaryOperator<T> fn, boolean needCurrent, long deadline) {
        checkOpen(op);
        if (options.readOnly) {
            throw Remote.error(op, address.text(), Reason.INVALID_ARGUMENT, "opened read-only");
        }
        try {
            if (deadline == 0) {
                turn.lockInterruptibly();
            } else if (!turn.tryLock(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS)) {
                throw Remote.error(op, address.text(), Reason.TIMEOUT, "another update of this object ran past the timeout");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw Remote.error(op, address.text(), Reason.INTERRUPTED, "");
        }
        try {
            Cached c = cache;
            long revision;
            Message current;
            if (c != null) {
                revision = c.revision;
                current = c.value;
            } else {
                KeyValue kv = fresh(op, deadline);
                current = remember(kv, op);
                revision = kv.getModRevision();
            }
            List<String> pending = new ArrayList<>();
            while (true) {
                T next = fn.apply((T) current); // messages are immutable: fn cannot change current
                ByteString data = codec.encode(next, op, address.text());
                String seq = Long.toString(++sequence);
                // A set: any revision will do, as long as no earlier attempt of this object landed unseen (its
                // writer record then has another version: proto/ETCD.md, "Unknown outcomes").
                Cmp[] compare = needCurrent
                    ? new Cmp[] {new Cmp(address.valueKey(), Cmp.Op.EQUAL, CmpTarget.modRevision(revision))}
                    : new Cmp[] {new Cmp(address.schemaKey(), Cmp.Op.EQUAL, CmpTarget.createRevision(schemaRevision)),
                        new Cmp(writer, Cmp.Op.EQUAL, CmpTarget.version(writerVersion))};
                TxnResponse r;
                try {
                    r = call(client.getKVClient().txn().If(compare)
                        .Then(Op.put(address.valueKey(), ByteSequence.from(data), PutOption.DEFAULT),
                            Op.put(writer, bytes(seq), PutOption.DEFAULT),
                            Op.get(address.valueKey(), GetOption.builder().withKeysOnly(true).build()))
                        .Else(Op.get(address.valueKey(), GetOption.DEFAULT), Op.get(writer, GetOption.DEFAULT),
                            Op.get(address.schemaKey(), GetOption.builder().withKeysOnly(true).build()))
                        .commit(), options, op, address.text(), deadline);
                } catch (ShmException e) {
                    if (e.reason() == Reason.TOO_LARGE || e.reason() == Reason.PERMISSION) {
                        throw e; // refused before it was applied
                    }
                    // Unknown outcome: send it again against the same revision (proto/ETCD.md, "Unknown outcomes").
                    pending.add(seq);
                    if (!outage(e, deadline)) {
                        throw Remote.error(op, address.text(), e.reason() == Reason.TIMEOUT ? Reason.TIMEOUT : e.reason(),
                            e.getMessage() + "; whether the last commit landed is unknown");
                    }
                    continue;
                }
                if (r.isSucceeded()) {
                    writerVersion++;
                    commits.incrementAndGet();
                    List<KeyValue> kvs = r.getGetResponses().get(0).getKvs();
                    if (!kvs.isEmpty()) {
                        keep(next, kvs.get(0).getModRevision(), kvs.get(0).getVersion());
                    }
                    return next;
                }
                List<KeyValue> value = r.getGetResponses().get(0).getKvs();
                List<KeyValue> mine = r.getGetResponses().get(1).getKvs();
                List<KeyValue> schema = r.getGetResponses().get(2).getKvs();
                writerVersion = mine.isEmpty() ? 0 : mine.get(0).getVersion();
                if (!mine.isEmpty() && pending.contains(mine.get(0).getValue().toString(StandardCharsets.UTF_8))) {
                    cache = null; // a commit thought lost had landed
                    commits.incrementAndGet();
                    return next;
                }
                if (value.isEmpty() || schema.isEmpty() || schema.get(0).getCreateRevision() != schemaRevision) {
                    throw Remote.errno(op, address.text(), Remote.ENOENT, "the variable was removed");
                }
                if (!needCurrent) {
                    continue; // the writer record's version was stale: now it is known
                }
                conflicts.incrementAndGet();
                current = remember(value.get(0), op);
                revision = value.get(0).getModRevision();
                if (deadline != 0 && System.nanoTime() - deadline > 0) {
                    throw Remote.error(op, address.text(), Reason.TIMEOUT,
                        "no commit within the timeout: the value kept changing (" + conflicts.get() + " conflicts)");
                }
            }
        } finally {
            turn.unlock();
        }
    }

    /** Reads the latest value, through outages. */
    private KeyValue fresh(String op, long deadline) {
        while (true) {
            try {
                return read(op, false, deadline, null);
            } catch (ShmException e) {
                if (!outage(e, deadline)) {
                    throw e;
                }
            }
        }
    }

    /** Whether to try again after {@code e}: no endpoint answered, and there is time left. Waits 100 ms. */
    private boolean outage(ShmException e, long deadline) {
        if (!Remote.isUnavailable(e) || closed) {
            return false;
        }
        if (options.onUnavailable != null) {
            options.onUnavailable.accept(e);
        }
        try {
            Thread.sleep(100);
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            return false;
        }
        return !closed && (deadline == 0 || System.nanoTime() - deadline < 0);
    }

    /**
     * Waits until the generation moves past {@code after}, or {@code timeout} passes (TIMEOUT), and returns the
     * generation seen: reads first, then watches from the revision after the read (proto/ETCD.md).
     */
    public long awaitChange(long after, Duration timeout) {
        checkOpen("await");
        long deadline = System.nanoTime() + Math.max(1, timeout.toNanos());
        boolean first = true;
        while (true) {
            long[] header = new long[1];
            KeyValue kv;
            try {
                // The first read is made even when the timeout has passed: a change is then seen at once.
                kv = read("await", true, first ? 0 : deadline, header);
            } catch (ShmException e) {
                if (outage(e, deadline)) {
                    continue;
                }
                throw e.reason() == Reason.TIMEOUT ? timedOut(after, timeout) : e;
            }
            first = false;
            long g = kv.getVersion() - 1;
            if (g != after) {
                return g;
            }
            Long seen = watch(after, header[0] + 1, deadline);
            if (seen != null) {
                return seen;
            }
            if (System.nanoTime() - deadline >= 0) {
                throw timedOut(after, timeout);
            }
        }
    }

    private ShmException timedOut(long after, Duration timeout) {
        return Remote.error("await", address.text(), Reason.TIMEOUT, "generation still " + after + " after " + timeout);
    }

    /** Watches from {@code from}: the new generation, or null to read again (compaction, an ended watch, time). */
    private Long watch(long after, long from, long deadline) {
        LinkedBlockingQueue<Object> events = new LinkedBlockingQueue<>();
        Watch.Watcher w = client.getWatchClient().watch(address.valueKey(),
            WatchOption.builder().withRevision(from).withRequireLeader(true).build(),
            Watch.listener(events::add, events::add, () -> events.add(Boolean.FALSE)));
        synchronized (watchers) {
            watchers.add(w);
        }
        try {
            while (true) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return null;
                }
                Object o;
                try {
                    o = events.poll(Math.min(left, TimeUnit.MILLISECONDS.toNanos(50)), TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw Remote.error("await", address.text(), Reason.INTERRUPTED, "");
                }
                if (closed) {
                    throw Remote.error("await", address.text(), Reason.CLOSED, "closed while waiting");
                }
                if (o == null) {
                    continue;
                }
                if (o instanceof WatchResponse r) {
                    for (WatchEvent ev : r.getEvents()) {
                        if (ev.getEventType() == WatchEvent.EventType.DELETE) {
                            throw Remote.errno("await", address.text(), Remote.ENOENT, "the variable was removed");
                        }
                        long g = ev.getKeyValue().getVersion() - 1;
                        if (g != after) {
                            return g;
                        }
                    }
                    continue;
                }
                if (o instanceof CompactedException || o instanceof Throwable || o == Boolean.FALSE) {
                    return null; // read again
                }
            }
        } finally {
            synchronized (watchers) {
                watchers.remove(w);
            }
            w.close();
        }
    }

    /** Lets go of the variable, which stays in etcd: waiters end with CLOSED; this object's writer record goes. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        turn.lock();
        try {
            if (sequence > 0) {
                client.getKVClient().delete(writer).get(Math.min(1000, options.requestTimeout.toMillis()), TimeUnit.MILLISECONDS);
            }
        } catch (Exception e) {
            // best effort: the record is deleted with the variable
        } finally {
            turn.unlock();
        }
        synchronized (watchers) {
            watchers.forEach(Watch.Watcher::close);
        }
        client.close();
    }

    /** Deletes the variable (value, schema, writer records) and closes this object. */
    public void remove() {
        checkOpen("remove");
        try {
            removeWith(client, address, options);
        } finally {
            close();
        }
    }
}
