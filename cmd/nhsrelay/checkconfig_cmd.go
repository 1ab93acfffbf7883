package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// errProblems says check-config found problems and printed them.
var errProblems = errors.New("the configuration has problems")

// runCheckConfig validates a config file and prints every problem, one per
// line, each naming its key, as `postfix check` does.
func runCheckConfig(args []string) error {
	path, err := parseConfigOnly("check-config", args)
	if err != nil {
		return err
	}
	c, err := loadConfig(path)
	if err != nil {
		for _, e := range unjoin(err) {
			fmt.Fprintln(os.Stdout, e)
		}
		return errProblems
	}
	if err := checkRedis(context.Background(), c); err != nil { // config_redis.go: the server itself
		fmt.Fprintln(os.Stdout, err)
		return errProblems
	}
	fmt.Fprintf(os.Stdout, "%s: ok (hostname %s, data in %s)\n", c.Path, c.Hostname, c.DataDir)
	return nil
}

// unjoin splits an errors.Join result into its parts.
func unjoin(err error) []error {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		return j.Unwrap()
	}
	return []error{err}
}
