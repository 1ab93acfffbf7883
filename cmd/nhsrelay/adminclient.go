package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// defaultConfigPath is where the CLI looks for the config when -c is absent.
const defaultConfigPath = "/etc/nhsrelay/nhsrelay.toml"

// adminClient talks to a running server's admin HTTP API (loopback, bearer
// token), as postqueue talks to the Postfix master.
type adminClient struct {
	base  string // "http://127.0.0.1:8025"
	token string
	http  *http.Client
}

// configFlag adds -c to fs and returns the path it will hold.
func configFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("NHSRELAY_CONFIG")
	if def == "" {
		def = defaultConfigPath
	}
	return fs.String("c", def, "config `file` (env NHSRELAY_CONFIG)")
}

// parseConfigOnly parses the arguments of a command whose only flag is -c
// (serve, status, check-config) and returns the config file path.
func parseConfigOnly(name string, args []string) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return *path, nil
}

// newAdminClient reads only the [admin] table of the config file, with the
// same defaults serve applies, so a file that leaves them out still works.
func newAdminClient(configPath string) (*adminClient, error) {
	var f struct {
		Server fileServer `toml:"server"`
		Admin  fileAdmin  `toml:"admin"`
	}
	def := defaultFileConfig()
	f.Server, f.Admin = def.Server, def.Admin
	if _, err := toml.DecodeFile(configPath, &f); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if f.Admin.Listen == "" {
		return nil, fmt.Errorf("%s: admin.listen is empty, so the admin API is off and the CLI cannot reach the server", configPath)
	}
	tok, err := os.ReadFile(resolvePath(configPath, f.Admin.TokenFile))
	if err != nil {
		return nil, fmt.Errorf("read admin token (admin.token_file): %w", err)
	}
	listen := f.Admin.Listen
	if strings.HasSuffix(listen, ":0") {
		// The kernel chose the port; serve recorded it in listeners.json.
		bound, err := readListeners(filepath.Join(resolvePath(configPath, f.Server.DataDir), "listeners.json"))
		if err != nil || bound.Admin == "" {
			return nil, fmt.Errorf("admin.listen has port 0 and the bound address is unknown (is nhsrelay serve running?): %v", err)
		}
		listen = bound.Admin
	}
	return &adminClient{
		base:  "http://" + listen,
		token: strings.TrimSpace(string(tok)),
		http:  &http.Client{Timeout: 60 * time.Second},
	}, nil
}

// do sends a JSON request (body may be nil, or an io.Reader sent as is) and
// decodes a JSON answer into out (may be nil). A non-2xx answer becomes an
// error carrying the server's {"error": "..."} text.
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd, ctype = b, "application/octet-stream"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API (is nhsrelay serve running?): %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin API: %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err = w.Write(data)
		return err
	}
	return json.Unmarshal(data, out)
}

// resolvePath makes p relative to the config file's folder unless absolute.
func resolvePath(configPath, p string) string {
	if p == "" || strings.HasPrefix(p, "/") {
		return p
	}
	dir := configPath[:strings.LastIndex(configPath, "/")+1]
	return dir + p
}

// parseCommand parses the top-level flags of a command that has
// subcommands (directory, queue) and returns the subcommand's name and
// its arguments. usage is printed, with fs's defaults, when none is given.
func parseCommand(fs *flag.FlagSet, usage string, args []string) (cmd string, rest []string, err error) {
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return "", nil, err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return "", nil, errors.New("missing command")
	}
	return fs.Arg(0), fs.Args()[1:], nil
}

// getAndPrint GETs path from the admin API and either copies the server's
// JSON to w as it is (asJSON, for scripts) or decodes it and prints it for
// a person: what every read-only CLI command does.
func getAndPrint[T any](ctx context.Context, c *adminClient, w io.Writer, path string, asJSON bool,
	decode func([]byte) (T, error), print func(io.Writer, T)) error {
	var raw bytes.Buffer
	if err := c.do(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := w.Write(raw.Bytes())
		return err
	}
	v, err := decode(raw.Bytes())
	if err != nil {
		return err
	}
	print(w, v)
	return nil
}

// decodeJSON returns a decoder for getAndPrint; what names the thing in
// its error.
func decodeJSON[T any](what string) func([]byte) (T, error) {
	return func(data []byte) (T, error) {
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			return v, fmt.Errorf("decode %s: %w", what, err)
		}
		return v, nil
	}
}
