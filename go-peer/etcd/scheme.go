package etcdvar

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvar"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Importing this package makes shmvar.CreateAt, OpenAt, OpenAnyAt and
// RemoveAt reach etcd:// addresses.
func init() { shmvar.RegisterScheme("etcd", scheme{}) }

type scheme struct{}

// options takes this package's Options from opts.Backend (an Options or
// *Options), with Capacity and ReadOnly from the shared-memory options.
// Without them it reads the environment, as Java's EtcdProvider does:
// SHMVAR_ETCD_USER and SHMVAR_ETCD_PASSWORD, SHMVAR_ETCD_CA,
// SHMVAR_ETCD_CERT, SHMVAR_ETCD_KEY, SHMVAR_ETCD_REQUEST_TIMEOUT_MS.
func options(opts shmvar.AddressOptions) Options {
	var o Options
	switch b := opts.Backend.(type) {
	case Options:
		o = b
	case *Options:
		if b != nil {
			o = *b
		}
	case nil:
		o = Options{Username: os.Getenv("SHMVAR_ETCD_USER"), Password: os.Getenv("SHMVAR_ETCD_PASSWORD"),
			CAFile: os.Getenv("SHMVAR_ETCD_CA"), CertFile: os.Getenv("SHMVAR_ETCD_CERT"), KeyFile: os.Getenv("SHMVAR_ETCD_KEY")}
		if ms, err := strconv.Atoi(os.Getenv("SHMVAR_ETCD_REQUEST_TIMEOUT_MS")); err == nil && ms > 0 {
			o.RequestTimeout = time.Duration(ms) * time.Millisecond
		}
	}
	if o.Capacity == 0 {
		o.Capacity = opts.Capacity
	}
	o.ReadOnly = o.ReadOnly || opts.ReadOnly
	return o
}

func (scheme) Create(ctx context.Context, address string, mt protoreflect.MessageType, opts shmvar.AddressOptions) (shmvar.Variable[proto.Message], error) {
	v, err := CreateOf(ctx, address, mt, options(opts))
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (scheme) Open(ctx context.Context, address string, mt protoreflect.MessageType, opts shmvar.AddressOptions) (shmvar.Variable[proto.Message], error) {
	v, err := OpenOf(ctx, address, mt, options(opts))
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (scheme) Remove(ctx context.Context, address string, opts shmvar.AddressOptions) error {
	return Remove(ctx, address, options(opts))
}
