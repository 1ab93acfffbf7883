package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// decodeFile decodes a TOML text onto fc (which holds the defaults) key by
// key, so that every unknown key and every value of the wrong type is
// reported, each naming its key: decoding the whole file at once stops at
// the first wrong type. err is a syntax error: then nothing can be read.
func decodeFile(text string, fc *fileConfig) (problems []error, err error) {
	var raw map[string]toml.Primitive
	md, err := toml.Decode(text, &raw)
	if err != nil {
		return nil, err
	}
	tables := reflect.ValueOf(fc).Elem()
	for _, name := range sortedKeys(raw) {
		table, ok := fieldByTag(tables, name)
		if !ok {
			problems = append(problems, &keyError{Key: name, Problem: "unknown key"})
			continue
		}
		var keys map[string]toml.Primitive
		if err := md.PrimitiveDecode(raw[name], &keys); err != nil {
			problems = append(problems, &keyError{Key: name, Problem: fmt.Sprintf("must be a table ([%s] and its keys below it)", name)})
			continue
		}
		for _, k := range sortedKeys(keys) {
			f, ok := fieldByTag(table, k)
			if !ok {
				problems = append(problems, &keyError{Key: name + "." + k, Problem: "unknown key"})
				continue
			}
			if err := md.PrimitiveDecode(keys[k], f.Addr().Interface()); err != nil {
				problems = append(problems, &keyError{Key: name + "." + k, Problem: "wrong type: want " + tomlType(f.Type())})
			}
		}
	}
	return problems, nil
}

// fieldByTag is the field of struct v whose toml tag is name.
func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("toml") == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// tomlType names what a key of Go type t is written as.
func tomlType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return `a string in quotes, like "value"`
	case reflect.Int, reflect.Int64:
		return "a whole number without quotes"
	case reflect.Bool:
		return "true or false, without quotes"
	case reflect.Slice:
		return "a list, like [" + strings.TrimPrefix(tomlType(t.Elem()), "a ") + "]"
	}
	return t.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
