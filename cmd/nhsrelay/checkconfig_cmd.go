package main

import "errors"

func runCheckConfig(args []string) error { return errors.New("not built yet") }
