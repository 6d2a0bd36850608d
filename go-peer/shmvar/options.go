package shmvar

import (
	"fmt"
	"os"
	"time"
)

// Options and their defaults. The Java twin is SharedVariable.Options.

// Options configure Create and Open. The zero value gives the defaults.
type Options struct {
	// Capacity is the most bytes an encoded value may take (Create only);
	// 0 means DefaultCapacity.
	Capacity int
	// Mode is the segment's permission bits (Create only); 0 means 0600.
	Mode os.FileMode
	// InitWait is how long Open waits for a creator that has not finished
	// writing the header; 0 means the protocol's default, one second.
	InitWait time.Duration
	// ReadOnly attaches the segment read-only (Open only); writes then fail.
	ReadOnly bool
	// AnyOwner accepts a segment owned by another user (Open only). By
	// default Open refuses one whose owner is not this process's user.
	AnyOwner bool
	// AnyMode accepts a world-writable segment (Open only), which any user
	// of the machine could corrupt; by default Open refuses it.
	AnyMode bool
	// Ephemeral marks the segment for removal as soon as it is attached:
	// the kernel frees it when the last process detaches or dies, and no
	// new process can open it by key from then on. Set it on the last peer
	// to open, or on a creator whose segment nobody else needs to find.
	Ephemeral bool
	// Wait is how lock waits and AwaitChange wait: SpinThenPark (the
	// default) or Spin.
	Wait WaitStrategy
}

// capacityAndMode applies the defaults of Options.Capacity and Options.Mode.
func capacityAndMode(opts Options) (int, uint32, error) {
	capacity := opts.Capacity
	if capacity == 0 {
		capacity = DefaultCapacity
	}
	if capacity < 0 || capacity > MaxCapacity {
		return 0, 0, fmt.Errorf("capacity=%d outside 1..%d", capacity, MaxCapacity)
	}
	mode := uint32(opts.Mode.Perm())
	if mode == 0 {
		mode = 0o600
	}
	return capacity, mode, nil
}

// checkOwnerAndMode applies the owner and mode checks of Open: both the owner
// and the creator must be this process's user; what is "segment",
// "semaphore set" or "file".
func checkOwnerAndMode(uid, cuid, mode uint32, opts Options, what string) string {
	euid := uint32(os.Geteuid())
	if !opts.AnyOwner && uid != euid {
		return fmt.Sprintf("%s is owned by uid %d, this process runs as uid %d; accept it with AnyOwner (--any-owner)", what, uid, euid)
	}
	if !opts.AnyOwner && cuid != euid {
		// The creator keeps full access whoever it makes the owner (IPC_SET).
		return fmt.Sprintf("%s is owned by uid %d (created by uid %d), this process runs as uid %d; accept it with AnyOwner (--any-owner)", what, uid, cuid, euid)
	}
	if !opts.AnyMode && mode&0o002 != 0 {
		return fmt.Sprintf("%s mode %04o lets any user write it; accept it with AnyMode (--any-mode)", what, mode&0o777)
	}
	return ""
}

// initWait applies the default of Options.InitWait.
func initWait(opts Options) time.Duration {
	if opts.InitWait == 0 {
		return defaultInitWait
	}
	return opts.InitWait
}
