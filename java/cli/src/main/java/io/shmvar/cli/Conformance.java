package io.shmvar.cli;

import com.google.protobuf.Message;
import io.shmvar.SharedMemoryVariable;
import io.shmvar.Options;
import io.shmvar.ShmException;
import io.shmvar.SharedVariable;
import io.shmvar.proto.ConformanceRefusal;
import io.shmvar.proto.ConformanceRequest;
import io.shmvar.proto.ConformanceResponse;
import io.shmvar.proto.ConformanceValue;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;

/**
 * The hidden {@code conformance} subcommand: the testee of the conformance corpus
 * ({@code proto/shmvar/v1/conformance.proto}). It reads length-prefixed {@code ConformanceRequest}s on stdin until
 * EOF and answers each with a {@code ConformanceResponse} on stdout, opening each image as a mapped file in
 * {@code --dir} with the library's real open and read. Go's twin is {@code go-peer/cmd/go-peer/conformance.go}.
 */
@Command(name = "conformance", hidden = true)
final class Conformance implements Callable<Integer> {
    @Option(names = "--dir", defaultValue = "${java.io.tmpdir}")
    Path dir;

    @Override
    public Integer call() throws IOException {
        DataInputStream in = new DataInputStream(new BufferedInputStream(new FileInputStream(FileDescriptor.in)));
        OutputStream out = new BufferedOutputStream(new FileOutputStream(FileDescriptor.out));
        long pid = ProcessHandle.current().pid();
        for (int n = 0; ; n++) {
            byte[] length = new byte[4];
            try {
                in.readFully(length);
            } catch (EOFException e) {
                return 0;
            }
            byte[] request = new byte[ByteBuffer.wrap(length).order(ByteOrder.LITTLE_ENDIAN).getInt()];
            in.readFully(request);
            byte[] response = answer(dir.resolve("conformance-" + pid + "-" + n), ConformanceRequest.parseFrom(request))
                .toByteArray();
            out.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(response.length).array());
            out.write(response);
            out.flush();
        }
    }

    private static ConformanceResponse answer(Path path, ConformanceRequest request) throws IOException {
        Message prototype = null;
        if (!request.getMessageType().isEmpty()) {
            prototype = JavaPeer.TYPES.get(request.getMessageType());
            if (prototype == null) {
                return ConformanceResponse.newBuilder()
                    .setRuntimeError("type " + request.getMessageType() + " is not compiled into java-peer").build();
            }
        }
        Files.write(path, request.getImage().toByteArray());
        try {
            if (request.getSize() > request.getImage().size()) {
                try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
                    f.setLength(request.getSize()); // sparse: costs no memory
                }
            }
            Options options = Options.defaults().withReadOnly(true)
                .withInitWait(Duration.ZERO);
            try (SharedMemoryVariable<? extends Message> v = prototype == null
                ? SharedVariable.openDynamicFile(path, options)
                : SharedVariable.openFile(path, prototype, options)) {
                v.get(); // decodes the value, with every check a reader makes
                return ConformanceResponse.newBuilder().setValue(ConformanceValue.newBuilder()
                    .setMessageType(v.descriptor().getMessageType())
                    .setPayload(com.google.protobuf.ByteString.copyFrom(v.getEncoded()))).build();
            } catch (ShmException e) {
                return ConformanceResponse.newBuilder().setRefusal(ConformanceRefusal.newBuilder()
                    .setKind(e.reason().kind()).setMessage(e.getMessage())).build();
            } catch (RuntimeException e) {
                return ConformanceResponse.newBuilder().setRuntimeError(e.toString()).build();
            }
        } finally {
            Files.deleteIfExists(path);
        }
    }
}
