package io.shmvar;

import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;

import java.net.URI;

/**
 * A backing reached by address, found with {@link java.util.ServiceLoader} by its URI scheme: what
 * {@link SharedVariable#open(URI, Message, Options)} and friends call for schemes other than {@code shm} and
 * {@code file}. A module that brings a backing (for example {@code shmvar-etcd}) provides one in
 * {@code META-INF/services/io.shmvar.SharedVariableProvider}. The Go twin is {@code shmvar.RegisterScheme}.
 */
public interface SharedVariableProvider {
    /** The URI scheme this provider answers, for example {@code "etcd"}. */
    String scheme();

    /** Creates the variable at {@code address}; fails if one exists there. */
    <T extends Message> SharedVariable<T> create(URI address, T prototype, Options options);

    /** Opens the variable at {@code address} and checks that it holds {@code prototype}'s type. */
    <T extends Message> SharedVariable<T> open(URI address, T prototype, Options options);

    /** Opens the variable at {@code address}, or creates it; safe when several processes call it at once. */
    <T extends Message> SharedVariable<T> openOrCreate(URI address, T prototype, Options options);

    /** Opens the variable at {@code address} and decodes values with the schema stored with it. */
    SharedVariable<DynamicMessage> openDynamic(URI address, Options options);
}
