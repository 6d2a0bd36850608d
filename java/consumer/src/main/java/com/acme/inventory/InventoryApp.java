package com.acme.inventory;

import com.google.protobuf.Timestamp;
import io.shmvar.Options;
import io.shmvar.SharedVariable;
import io.shmvar.ShmException;

import java.net.URI;
import java.time.Instant;

/**
 * What a team's service does with the library: attach to the inventory shared by every process on the host
 * (creating it if it is the first), add to one item's stock N times, and print what it sees.
 *
 * <p>Usage: {@code InventoryApp ADDRESS ITEM TIMES NAME}, for example {@code shm:0x1234 apples 1000 java}.
 */
public final class InventoryApp {
    public static void main(String[] args) {
        if (args.length != 4) {
            System.err.println("usage: InventoryApp ADDRESS ITEM TIMES NAME");
            System.exit(2);
        }
        String item = args[1];
        int times = Integer.parseInt(args[2]);
        String name = args[3];
        try (SharedVariable<Inventory> inventory = SharedVariable.openOrCreate(URI.create(args[0]),
                Inventory.getDefaultInstance(), Options.defaults())) {
            for (int i = 0; i < times; i++) {
                inventory.update(v -> {
                    Instant now = Instant.now();
                    return v.toBuilder()
                        .putStock(item, v.getStockOrDefault(item, 0) + 1)
                        .setUpdatedBy(name)
                        .setUpdatedAt(Timestamp.newBuilder().setSeconds(now.getEpochSecond()).setNanos(now.getNano()))
                        .build();
                });
            }
            Inventory now = inventory.get();
            System.out.println(item + "=" + now.getStockOrDefault(item, 0) + " generation=" + inventory.generation()
                + " protobuf=" + com.google.protobuf.Message.class.getProtectionDomain().getCodeSource().getLocation()
                    .getPath().replaceAll(".*/", ""));
        } catch (ShmException e) {
            System.err.println("inventory: " + e.getMessage());
            System.exit(1);
        }
    }
}
