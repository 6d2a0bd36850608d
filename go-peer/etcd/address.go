package etcdvar

import (
	"fmt"
	"net"
	"strings"
)

// Address is where a variable lives: the endpoints of one etcd cluster and
// the variable's path, written etcd://host:port,host:port/prefix/name.
type Address struct {
	Endpoints []string // host:port each
	Path      string   // "/prefix/name": starts with "/", segments neither empty nor starting with "."
}

// ParseAddress reads etcd://host:port[,host:port...]/path. A path segment
// may not be empty or start with "." (the keys of a variable are its path
// followed by a segment that does: proto/ETCD.md).
func ParseAddress(s string) (Address, error) {
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		return Address{}, fmt.Errorf("does not start with etcd://: write etcd://host:port[,host:port...]/prefix/name")
	}
	hosts, path, ok := strings.Cut(rest, "/")
	if !ok || hosts == "" {
		return Address{}, fmt.Errorf("write etcd://host:port[,host:port...]/prefix/name")
	}
	a := Address{Path: "/" + path}
	for _, h := range strings.Split(hosts, ",") {
		if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
			return Address{}, fmt.Errorf("endpoint %q is not host:port", h)
		}
		a.Endpoints = append(a.Endpoints, h)
	}
	if err := checkPath(a.Path, false); err != nil {
		return Address{}, err
	}
	return a, nil
}

// checkPath refuses a path that could not name a variable; a prefix (for
// List) may end with "/" and be "/".
func checkPath(path string, prefix bool) error {
	trimmed := strings.TrimPrefix(path, "/")
	if prefix {
		trimmed = strings.TrimSuffix(trimmed, "/")
		if trimmed == "" {
			return nil
		}
	}
	if trimmed == "" {
		return fmt.Errorf("no variable name after the endpoints")
	}
	for _, seg := range strings.Split(trimmed, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("path %q has an empty segment", path)
		case strings.HasPrefix(seg, "."):
			return fmt.Errorf("path %q: segment %q starts with \".\", which is kept for the variable's own keys", path, seg)
		}
		for _, c := range seg {
			if c < 0x21 || c == 0x7f {
				return fmt.Errorf("path %q has a space or control character", path)
			}
		}
	}
	return nil
}

// String writes the address back as etcd://...
func (a Address) String() string {
	return "etcd://" + strings.Join(a.Endpoints, ",") + a.Path
}

// The keys of the variable at path (proto/ETCD.md, "Keys").
func schemaKey(path string) string     { return path + "/.schema" }
func valueKey(path string) string      { return path + "/.value" }
func writersPrefix(path string) string { return path + "/.writers/" }
func ownKeys(path string) string       { return path + "/." }
