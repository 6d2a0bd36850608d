/**
 * The consumer as a named module. io.shmvar is the library's automatic module name; protobuf reads the generated
 * messages reflectively, so their package is exported to it. Run with --add-modules ALL-MODULE-PATH: jnr-ffi, an
 * automatic module, needs the asm modules that nothing requires by name (README, "Install (Java)").
 */
module com.acme.inventory {
    requires io.shmvar;
    requires com.google.protobuf;
    exports com.acme.inventory to com.google.protobuf;
}
