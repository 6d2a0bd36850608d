//go:build etcd_backend

// This file is compiled into bin/go-peer (package main of
// go-peer/cmd/go-peer) by make build, through go build -overlay (see
// overlay.json beside it), so that the command reaches etcd:// addresses
// while the core module needs nothing of etcd. It is not a package of its own.

package main

import (
	"context"
	"errors"
	"os"

	etcdvar "github.com/shmvar/shmvar/go-peer/etcd"
)

func init() {
	listAt = func(f *remoteFlags) ([]listed, error) {
		entries, err := etcdvar.List(context.Background(), f.address, backendOptions(f).(etcdvar.Options))
		var out []listed
		for _, e := range entries {
			out = append(out, listed{e.Address, e.Type, e.Capacity, e.Generation, e.Creator})
		}
		return out, err
	}
	unavailable = func(err error) bool { return errors.Is(err, etcdvar.ErrUnavailable) }
	backendOptions = func(f *remoteFlags) any {
		return etcdvar.Options{
			Serializable:   f.serializable,
			RequestTimeout: f.requestTimeout,
			Username:       f.user,
			Password:       os.Getenv("SHMVAR_ETCD_PASSWORD"),
			CAFile:         f.ca,
			CertFile:       f.cert,
			KeyFile:        f.key,
			OnUnavailable:  f.onUnavailable,
		}
	}
}
