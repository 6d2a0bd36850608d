package etcdvar

import (
	"context"
	"sort"
	"strings"

	"github.com/shmvar/shmvar/go-peer/shmvar"
	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// Entry is one variable found by List.
type Entry struct {
	Address    string // etcd://.../path
	Path       string
	Type       string // the schema record's message type; "" if the record does not decode
	Capacity   uint64
	Generation uint64
	Creator    string
}

// List returns the variables under the prefix of address
// (etcd://host:port,.../prefix, or etcd://host:port/ for all), in path
// order: the keys ending in /.schema (proto/ETCD.md, "Keys"), with the
// generation of their value keys. One range request.
func List(ctx context.Context, address string, opts Options) ([]Entry, error) {
	rest, ok := strings.CutPrefix(address, "etcd://")
	hosts, path, _ := strings.Cut(rest, "/")
	path = "/" + strings.TrimSuffix(path, "/")
	var err error
	a := Address{Path: path}
	if !ok || hosts == "" {
		err = errInvalid("write etcd://host:port[,host:port...]/prefix")
	} else if err = checkPath(path, true); err == nil {
		var parsed Address
		if parsed, err = ParseAddress("etcd://" + hosts + "/x"); err == nil {
			a.Endpoints = parsed.Endpoints
		}
	}
	if err != nil {
		return nil, &Error{Op: "ls", Address: address, Err: shmvar.ErrInvalidArgument, Detail: err.Error()}
	}
	cli, err := connect(a, opts)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	prefix := path + "/"
	if path == "/" {
		prefix = "/"
	}
	rctx, cancel := context.WithTimeout(ctx, opts.requestTimeout())
	defer cancel()
	resp, err := cli.Get(rctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, classifyError("ls", a, opts.requestTimeout(), rctx, err)
	}
	versions := map[string]int64{}
	schemas := map[string][]byte{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if p, ok := strings.CutSuffix(k, "/.schema"); ok {
			schemas[p] = kv.Value
		} else if p, ok := strings.CutSuffix(k, "/.value"); ok {
			versions[p] = kv.Version
		}
	}
	var entries []Entry
	for p, raw := range schemas {
		e := Entry{Address: "etcd://" + hosts + p, Path: p}
		d := &shmvarpb.SegmentDescriptor{}
		if proto.Unmarshal(raw, d) == nil {
			e.Type, e.Capacity, e.Creator = d.GetMessageType(), d.GetCapacity(), d.GetCreator()
		}
		if v := versions[p]; v > 0 {
			e.Generation = uint64(v - 1)
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	return entries, nil
}

type errInvalid string

func (e errInvalid) Error() string { return string(e) }
