package smtpd

import (
	"net"
	"os/exec"
	"strings"
	"testing"
)

// swaks runs the swaks client against addr and returns its transcript.
func swaks(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	args = append([]string{"--server", host, "--port", port, "--helo", "client.example",
		"--timeout", "20", "--header", "Subject: swaks test"}, args...)
	out, err := exec.Command("swaks", args...).CombinedOutput()
	return string(out), err
}

func TestSwaks(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	auth := []string{"--from", own, "--to", remote, "--auth", "PLAIN", "--auth-user", user, "--auth-password", pass}
	for _, tc := range []struct {
		name string
		addr string
		args []string
		want string // in the transcript
		ok   bool
	}{
		{"starttls auth", ts.sub, append([]string{"--tls"}, auth...), "<~  250 2.0.0 Ok: queued as Q", true},
		{"implicit tls auth login", ts.subs, []string{"--tls-on-connect", "--from", own, "--to", remote,
			"--auth", "LOGIN", "--auth-user", user, "--auth-password", pass}, "<~  250 2.0.0 Ok: queued as Q", true},
		{"auth without tls", ts.sub, auth, "not advertise", false},
		{"no auth", ts.sub, []string{"--tls", "--from", own, "--to", remote}, "<~* 530 5.7.0 Authentication required", false},
		{"spoofed from header", ts.sub, append([]string{"--tls", "--h-From", "<" + other + ">"}, auth...), "<~* 553 5.7.1 From: header address <" + other + ">", false},
		{"mx relay attempt", ts.mx, []string{"--from", "a@b.example", "--to", remote}, "<** 550 5.7.1 relaying denied", false},
		{"mx hosted", ts.mx, []string{"--tls", "--from", "a@b.example", "--to", hosted}, "<~  250 2.0.0 Ok: queued as Q", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := swaks(t, tc.addr, tc.args...)
			if (err == nil) != tc.ok || !strings.Contains(out, tc.want) {
				t.Fatalf("swaks: err = %v, want ok=%v and %q in:\n%s", err, tc.ok, tc.want, out)
			}
		})
	}
}
