package main

import "errors"

func runDirectory(args []string) error { return errors.New("not built yet") }
