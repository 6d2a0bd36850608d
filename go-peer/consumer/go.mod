module example.com/acme/inventory

go 1.23.0

require (
	github.com/shmvar/shmvar/go-peer v0.0.0
	google.golang.org/protobuf v1.36.12
)

require golang.org/x/sys v0.35.0

// Until github.com/shmvar/shmvar/go-peer is published: the package next door.
replace github.com/shmvar/shmvar/go-peer => ../
