package main

import "errors"

func runQueue(args []string) error { return errors.New("not built yet") }
