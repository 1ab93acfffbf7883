package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"nhsrelay/directory/peers"
)

const peerUsage = `usage: nhsrelay directory [-c FILE] peer COMMAND [ARGS]

Federation with other relays over FHIR (README "Federation between relays
over FHIR"): this relay imports the endpoints a peer hosts, verified by
federation, and keeps them in sync; the peer's CA becomes trusted for that
peer's S/MIME certificates and for the TLS of its MX, with no config edit.

commands:
  add NAME -url URL (-token TOKEN | -token-file FILE) -ca FILE
                   add a peer: URL is its FHIR base (https://host:port/fhir),
                   TOKEN its FHIR read token (its fhir.token), FILE its CA
                   certificate (PEM, its ca/ca.crt); its directory is read
                   once now, and nothing is stored if that fails
  list [-json]     every peer, its last sync and how many endpoints it gave
  show [-json] NAME
                   one peer: CA fingerprints, MX hosts, last sync's changes
  sync [-json] NAME
                   read the peer's directory now (it is read every
                   federation.peer_sync_interval anyway)
  remove NAME      retire every endpoint imported from it; stop trusting its CA
`

// peerMain runs `nhsrelay directory peer ...` against the running server.
func peerMain(ctx context.Context, configPath string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("directory peer", flag.ContinueOnError)
	cmd, rest, err := parseCommand(fs, peerUsage, args)
	if err != nil {
		return err
	}
	sfs := flag.NewFlagSet("directory peer "+cmd, flag.ContinueOnError)
	sfs.Usage = func() { fmt.Fprint(sfs.Output(), peerUsage) }
	asJSON := sfs.Bool("json", false, "print the server's JSON")
	var p peers.Peer
	var tokenFile, caFile string
	if cmd == "add" {
		sfs.StringVar(&p.URL, "url", "", "the peer's FHIR base `URL`")
		sfs.StringVar(&p.Token, "token", "", "the peer's FHIR read `token`")
		sfs.StringVar(&tokenFile, "token-file", "", "`file` holding the peer's FHIR read token (keeps it out of ps)")
		sfs.StringVar(&caFile, "ca", "", "the peer's CA certificate `file` (PEM)")
	}
	pos, err := parseInterleaved(sfs, rest)
	if err != nil {
		return err
	}
	want := 1
	if cmd == "list" {
		want = 0
	}
	if len(pos) != want {
		sfs.Usage()
		return fmt.Errorf("directory peer %s: want %d argument(s), got %d", cmd, want, len(pos))
	}
	c, err := newAdminClient(configPath)
	if err != nil {
		return err
	}
	c.http.Timeout = peers.DefaultTimeout + time.Minute // add and sync read the peer's whole directory
	path := "/v1/directory/peers"
	if want == 1 {
		path += "/" + url.PathEscape(pos[0])
	}
	switch cmd {
	case "list":
		return getAndPrint(ctx, c, stdout, path, *asJSON, decodeJSON[[]peers.Info]("peers"), printPeers)
	case "show":
		return getAndPrint(ctx, c, stdout, path, *asJSON, decodeJSON[peers.Info]("peer"), printPeer)
	case "sync":
		return postAndPrint(ctx, c, stdout, path+"/sync", nil, *asJSON)
	case "remove":
		if err := c.do(ctx, http.MethodDelete, path, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "peer %s removed: its endpoints are retired and its CA is no longer trusted\n", pos[0])
		return nil
	case "add":
		if err := readPeerFiles(&p, tokenFile, caFile); err != nil {
			return err
		}
		p.Name = pos[0]
		return postAndPrint(ctx, c, stdout, "/v1/directory/peers", p, *asJSON)
	}
	sfs.Usage()
	return fmt.Errorf("unknown directory peer command %q", cmd)
}

// readPeerFiles fills the token (from -token-file if given) and the CA.
func readPeerFiles(p *peers.Peer, tokenFile, caFile string) error {
	var problems []string
	switch {
	case tokenFile != "" && p.Token != "":
		problems = append(problems, "give -token or -token-file, not both")
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			problems = append(problems, "-token-file: "+err.Error())
		}
		p.Token = strings.TrimSpace(string(b))
	case p.Token == "":
		problems = append(problems, "-token or -token-file is required (the peer's FHIR read token)")
	}
	if p.URL == "" {
		problems = append(problems, "-url is required (the peer's FHIR base, https://host:port/fhir)")
	}
	if caFile == "" {
		problems = append(problems, "-ca is required (the peer's CA certificate, PEM)")
	} else if b, err := os.ReadFile(caFile); err != nil {
		problems = append(problems, "-ca: "+err.Error())
	} else {
		p.CA = string(b)
	}
	if len(problems) > 0 {
		return errors.New("directory peer add: " + strings.Join(problems, "; "))
	}
	return nil
}

// postAndPrint POSTs body and prints the peer the server answers with.
func postAndPrint(ctx context.Context, c *adminClient, w io.Writer, path string, body any, asJSON bool) error {
	if asJSON {
		return c.do(ctx, http.MethodPost, path, body, w)
	}
	var in peers.Info
	if err := c.do(ctx, http.MethodPost, path, body, &in); err != nil {
		return err
	}
	printPeer(w, in)
	return nil
}

// when is a time for people, "-" if unset.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func printPeers(w io.Writer, ps []peers.Info) {
	if len(ps) == 0 {
		fmt.Fprintln(w, "no federation peers (add one with: nhsrelay directory peer add NAME -url URL -token-file FILE -ca FILE)")
		return
	}
	for _, in := range ps {
		state := "ok"
		if in.LastError != "" {
			state = "FAILING: " + in.LastError
		} else if in.LastSuccess.IsZero() {
			state = "not synced yet"
		}
		fmt.Fprintf(w, "%-20s %-45s %6d endpoints  last sync %s  %s\n", in.Name, in.URL, in.Endpoints, when(in.LastSuccess), state)
	}
}

func printPeer(w io.Writer, in peers.Info) {
	fmt.Fprintf(w, "peer          %s\nurl           %s\n", in.Name, in.URL)
	for _, ca := range in.CAs {
		fmt.Fprintf(w, "ca            %s\n", ca)
	}
	fmt.Fprintf(w, "added         %s by %s\nendpoints     %d live, of %d organisations\nmx hosts      %s\n",
		when(in.AddedAt), in.AddedBy, in.Endpoints, in.Organisations, strings.Join(in.MXHosts, ", "))
	fmt.Fprintf(w, "last attempt  %s (%s)\nlast success  %s\n", when(in.LastAttempt), in.LastDuration, when(in.LastSuccess))
	if in.LastError != "" {
		fmt.Fprintf(w, "last error    %s\n", in.LastError)
	}
	if l := in.Last; l != nil {
		fmt.Fprintf(w, "last changes  %d added, %d changed (%d certificates), %d suspended, %d reactivated, %d retired, %d unchanged\n",
			len(l.Added), len(l.Changed), len(l.CertChanged), len(l.Suspended), len(l.Reactivated), len(l.Retired), l.Unchanged)
		for _, c := range l.Conflicts {
			fmt.Fprintf(w, "conflict      %s\n", c)
		}
		for _, r := range l.Rejected {
			fmt.Fprintf(w, "rejected      %s\n", r)
		}
	}
}
