//go:build linux

package crashtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"nhsrelay/audit/audittest"
)

// TestDiskFullThenKill9: the relay's data_dir (spool, queue, audit log)
// is a small tmpfs. Under load from authenticated senders (STARTTLS, AUTH)
// the disk fills: intake answers 452 4.3.1 or refuses the message, never
// 250 for what it could not store. Space comes back: intake resumes by
// itself, without a restart. Then kill -9 and restart: every message that
// was answered 250 is delivered, exactly once, to the hosted Maildir.
func TestDiskFullThenKill9(t *testing.T) {
	t.Parallel()
	bin := buildRelay(t)
	domain := "hosted.diskfull.nhs.test"
	maildirRoot := filepath.Join(t.TempDir(), "maildir")
	r := newRelay(t, bin, func(cfg map[string]any) {
		rl := table(cfg, "relay")
		rl["maildir_root"] = maildirRoot
		rl["retry_min"], rl["retry_max"] = "1s", "2s"
	})
	// data_dir onto a tmpfs of its own, with what init put there.
	data, keep := filepath.Join(r.dir, "data"), t.TempDir()
	if out, err := exec.Command("cp", "-a", data+"/.", keep).CombinedOutput(); err != nil {
		t.Fatalf("save data_dir: %v: %s", err, out)
	}
	audittest.MountSmall(t, data, 8<<20)
	if out, err := exec.Command("cp", "-a", keep+"/.", data).CombinedOutput(); err != nil {
		t.Fatalf("restore data_dir: %v: %s", err, out)
	}
	r.start(t)
	r.addEndpoint(t, domain, `{"kind":"hosted"}`, false)

	pem, err := os.ReadFile(r.relayCA())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	src := newSenders()
	src.startSubmit(t, ctx, r.smtpAddr, r.relayCA(), r.account, "d", domain, 4, 200)
	waitFor(t, 60*time.Second, "20 acknowledgements", func() bool { return src.acks.Load() >= 20 })

	free := audittest.Fill(t, data)
	// probe sends one message and says whether it was acknowledged;
	// a refusal is fine, a 250 is recorded as acked and must arrive.
	probe := func(i int) (ok bool, refusal string) {
		token := fmt.Sprintf("%dprobe@%s", i, domain)
		err := src.submitOne(r.smtpAddr, tlsConf, r.account, token)
		var se *smtp.SMTPError
		switch {
		case err == nil && src.snapshot()[token] == acked:
			return true, ""
		case err == nil:
			src.mu.Lock()
			code := src.refusedWith[token]
			src.mu.Unlock()
			if code != "452 4.3.1" {
				t.Fatalf("probe %s refused at the end of DATA with %q, want 452 4.3.1", token, code)
			}
			return false, "452 4.3.1 at the end of DATA"
		case errors.As(err, &se) && se.Code == 452 && se.EnhancedCode == (smtp.EnhancedCode{4, 3, 1}):
			return false, "452 4.3.1 at " + strings.Fields(err.Error())[0]
		default:
			t.Fatalf("probe %s: %v, want 250 or 452 4.3.1", token, err)
			return false, ""
		}
	}
	i := 0
	for ; ; i++ { // the last pages of open files may still take a few messages
		if i == 100 {
			t.Fatal("a full disk took 100 more messages")
		}
		if ok, why := probe(i); !ok {
			t.Logf("disk full: probe %d refused (%s) after %d acknowledgements", i, why, src.acks.Load())
			break
		}
	}

	free()
	deadline := time.Now().Add(30 * time.Second)
	for i++; ; i++ {
		if ok, _ := probe(i); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("intake did not resume within 30s of space coming back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("intake resumed by itself; %d acknowledgements so far", src.acks.Load())

	r.kill9(t)
	src.wait()
	r.start(t)
	waitFor(t, 2*time.Minute, "the queue to drain", func() bool { return r.queueLen(t) == 0 })
	r.stop(t)
	summary, problems := checkDeliveries(src.snapshot(), countMaildir(t, maildirRoot), 0, 20)
	t.Log(summary)
	for _, p := range problems {
		t.Error(p)
	}
}
