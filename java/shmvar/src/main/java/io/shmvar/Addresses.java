package io.shmvar;

import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;

import java.net.URI;
import java.nio.file.Path;
import java.util.ServiceLoader;

/** Turns an address into the provider of its backing: shared memory here, others from the class path. */
final class Addresses {
    private Addresses() {
    }

    static SharedVariableProvider provider(URI address) {
        String scheme = address.getScheme();
        if (scheme == null) {
            throw ShmException.of("open", 0, ShmException.Reason.INVALID_ARGUMENT,
                "address " + address + " has no scheme: use shm:KEY, file:PATH or a provider's, such as etcd://");
        }
        if (scheme.equals("shm") || scheme.equals("file")) {
            return SHARED_MEMORY;
        }
        for (SharedVariableProvider p : ServiceLoader.load(SharedVariableProvider.class)) {
            if (p.scheme().equals(scheme)) {
                return p;
            }
        }
        throw ShmException.of("open", 0, ShmException.Reason.INVALID_ARGUMENT, "address " + address
            + ": no backing for scheme " + scheme + " on the class path (etcd:// needs the shmvar-etcd module)");
    }

    private static final SharedVariableProvider SHARED_MEMORY = new SharedVariableProvider() {
        @Override
        public String scheme() {
            return "shm";
        }

        @Override
        public <T extends Message> SharedVariable<T> create(URI address, T prototype, Options options) {
            return isFile(address) ? SharedMemoryVariable.createFile(path(address), prototype, options)
                : SharedMemoryVariable.create(key(address), prototype, options);
        }

        @Override
        public <T extends Message> SharedVariable<T> open(URI address, T prototype, Options options) {
            return isFile(address) ? SharedMemoryVariable.openFile(path(address), prototype, options)
                : SharedMemoryVariable.open(key(address), prototype, options);
        }

        @Override
        public <T extends Message> SharedVariable<T> openOrCreate(URI address, T prototype, Options options) {
            return isFile(address) ? SharedMemoryVariable.openOrCreateFile(path(address), prototype, options)
                : SharedMemoryVariable.openOrCreate(key(address), prototype, options);
        }

        @Override
        public SharedVariable<DynamicMessage> openDynamic(URI address, Options options) {
            return isFile(address) ? SharedMemoryVariable.openDynamicFile(path(address), options)
                : SharedMemoryVariable.openDynamic(key(address), options);
        }

        private boolean isFile(URI address) {
            return address.getScheme().equals("file");
        }

        private Path path(URI address) {
            return Path.of(address);
        }

        private int key(URI address) {
            try {
                return ShmException.parseKey(address.getSchemeSpecificPart()); // as the commands take it
            } catch (ShmException e) {
                throw ShmException.of("open", 0, ShmException.Reason.INVALID_ARGUMENT, "address " + address + ": "
                    + e.detail());
            }
        }
    };
}
