package io.shmvar.etcd;

import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import io.shmvar.Options;
import io.shmvar.Remote;
import io.shmvar.SharedVariable;
import io.shmvar.SharedVariableProvider;
import io.shmvar.ShmException;
import java.net.URI;
import java.time.Duration;

/**
 * Makes {@code SharedVariable.create/open/openOrCreate/openDynamic(URI.create("etcd://host:port,.../prefix/name"),
 * ...)} reach etcd when this module is on the class path (META-INF/services). Of the shared-memory
 * {@link Options} it honours the capacity and read-only; the etcd options come from the environment:
 * {@code SHMVAR_ETCD_USER} and {@code SHMVAR_ETCD_PASSWORD}, {@code SHMVAR_ETCD_CA}, {@code SHMVAR_ETCD_CERT},
 * {@code SHMVAR_ETCD_KEY}, {@code SHMVAR_ETCD_REQUEST_TIMEOUT_MS}. The Go twin registers with
 * {@code shmvar.RegisterScheme}.
 */
public final class EtcdProvider implements SharedVariableProvider {
    @Override
    public String scheme() {
        return "etcd";
    }

    static EtcdVariable.Options options(Options shared) {
        EtcdVariable.Options o = EtcdVariable.Options.defaults().withCapacity(shared.capacity())
            .withReadOnly(shared.readOnly());
        String user = System.getenv("SHMVAR_ETCD_USER");
        if (user != null && !user.isEmpty()) {
            o = o.withCredentials(user, System.getenv("SHMVAR_ETCD_PASSWORD"));
        }
        String ca = System.getenv("SHMVAR_ETCD_CA"), cert = System.getenv("SHMVAR_ETCD_CERT"), key = System.getenv("SHMVAR_ETCD_KEY");
        if (ca != null || cert != null || key != null) {
            o = o.withTls(ca, cert, key);
        }
        String timeout = System.getenv("SHMVAR_ETCD_REQUEST_TIMEOUT_MS");
        if (timeout != null && !timeout.isEmpty()) {
            o = o.withRequestTimeout(Duration.ofMillis(Long.parseLong(timeout)));
        }
        return o;
    }

    @Override
    public <T extends Message> SharedVariable<T> create(URI address, T prototype, Options options) {
        return EtcdVariable.create(address.toString(), prototype, options(options));
    }

    @Override
    public <T extends Message> SharedVariable<T> open(URI address, T prototype, Options options) {
        return EtcdVariable.open(address.toString(), prototype, options(options));
    }

    /** Creates the variable, or opens it when it exists: create is one transaction, so one of racing callers wins. */
    @Override
    public <T extends Message> SharedVariable<T> openOrCreate(URI address, T prototype, Options options) {
        for (int attempt = 0; ; attempt++) {
            try {
                return create(address, prototype, options);
            } catch (ShmException e) {
                if (e.errno() != Remote.EEXIST) {
                    throw e;
                }
            }
            try {
                return open(address, prototype, options);
            } catch (ShmException e) {
                if (e.errno() != Remote.ENOENT || attempt >= 10) { // removed in between: create again
                    throw e;
                }
            }
        }
    }

    @Override
    public SharedVariable<DynamicMessage> openDynamic(URI address, Options options) {
        return EtcdVariable.openDynamic(address.toString(), options(options));
    }
}
