package io.shmvar;

/**
 * What the kernel says about a segment (IPC_STAT) or a mapped file (fstat): its id (-1 for a file), size, owner,
 * creator, group, permission bits, creator and last pid, attachment count and whether it is marked for removal.
 * The Go twin is {@code shmvar.SegmentInfo}.
 */
public record SegmentInfo(int id, long size, int uid, int cuid, int gid, int mode, int cpid, int lpid,
                          long attached, boolean removed) {
}
