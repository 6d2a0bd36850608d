package etcdvar_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	etcdvar "github.com/shmvar/shmvar/go-peer/etcd"
	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestShouldMapEtcdAuthOntoPermission enables etcd's auth on a server of its
// own: a user with read-write permission on one prefix only.
func TestShouldMapEtcdAuthOntoPermission(t *testing.T) {
	s := startServer(t)
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{s.endpoints}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "app"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "app", "/allowed/", clientv3.GetPrefixRangeEnd("/allowed/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "app", "apppw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "app", "app"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			admin.Close()
			t.Fatalf("setting up etcd auth: %v", err)
		}
	}
	admin.Close()
	app := etcdvar.Options{Username: "app", Password: "apppw"}
	allowed := "etcd://" + s.endpoints + "/allowed/counter"
	v, err := etcdvar.Create[*examplespb.Counter](bg, allowed, app)
	if err != nil {
		t.Fatalf("create where the user may write: %v", err)
	}
	defer v.Close()
	if _, err := v.Update(incr); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		var se *shmvar.Error
		if !errors.Is(err, shmvar.ErrPermission) || !errors.As(err, &se) || se.Kind() != shmvarpb.ErrorKind_PERMISSION || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line of ErrPermission", what, err)
		}
	}
	_, err = etcdvar.Create[*examplespb.Counter](bg, "etcd://"+s.endpoints+"/elsewhere/counter", app)
	check("create outside the user's prefix", err)
	_, err = etcdvar.Open[*examplespb.Counter](bg, allowed, etcdvar.Options{Username: "app", Password: "wrong"})
	check("a wrong password", err)
	_, err = etcdvar.Open[*examplespb.Counter](bg, allowed, etcdvar.Options{})
	check("no credentials", err)
}
