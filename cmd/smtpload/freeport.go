package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
)

// runFreePort prints n distinct ports the kernel hands out on 127.0.0.1.
// All listeners stay open until every port is chosen, so the n differ; the
// caller binds them soon after (the usual, small race of a benchmark script).
func runFreePort(args []string) error {
	fs := flag.NewFlagSet("freeport", flag.ContinueOnError)
	n := fs.Int("n", 1, "how many ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 64 {
		return errors.New("-n must be between 1 and 64")
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range *n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		lns = append(lns, ln)
	}
	for _, ln := range lns {
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
