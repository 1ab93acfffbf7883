package crashtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"nhsrelay/directory/boltstore"
	"nhsrelay/directory/redisstore"
	"nhsrelay/relay/queue/queuetest"
)

// Cluster load: a few senders per node, small enough for 2 CI cores.
const (
	clusterNodes     = 3
	clusterSenders   = 3 // per node
	clusterPerSender = 15
	clusterKillAfter = 30 // acknowledgements (all nodes) before node 2 is killed
)

// TestClusterKill9 runs three nhsrelay nodes on one redis-server (AOF
// fsynced on every write), submits to all three at once, kills one node
// with SIGKILL mid-load and never restarts it, then kills and restarts
// redis-server itself mid-load: every message that got a 250 must reach
// the hosted Maildir (shared by the nodes) exactly once, delivered by the
// survivors.
func TestClusterKill9(t *testing.T) {
	t.Parallel()
	bin := buildRelay(t)
	srv := queuetest.StartRedisServer(t)
	maildirRoot := filepath.Join(t.TempDir(), "maildir")
	domain := "hosted.cluster.nhs.test"
	edit := func(cfg map[string]any) {
		rl := table(cfg, "relay")
		rl["maildir_root"] = maildirRoot
		rl["retry_min"] = "1s"
		rl["retry_max"] = "2s"
		rl["attempt_timeout"] = "5s" // a dead node's leases expire 10s after it took them
		table(cfg, "redis")["url"] = srv.URL()
	}
	node1 := newRelay(t, bin, edit)
	seedDirectory(t, node1, srv)
	nodes := []*relayProc{node1}
	for i := 2; i <= clusterNodes; i++ {
		nodes = append(nodes, cloneNode(t, node1, i))
	}
	for _, n := range nodes {
		n.start(t)
	}
	epID := node1.addEndpoint(t, domain, `{"kind":"hosted"}`, false)
	time.Sleep(time.Second) // the other nodes refresh the directory every 500ms

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	src := newSenders()
	for i, n := range nodes {
		src.startSubmit(t, ctx, n.smtpAddr, node1.relayCA(), node1.account, "n"+strconv.Itoa(i+1)+"w1s", domain, clusterSenders, clusterPerSender)
	}
	waitFor(t, 90*time.Second, fmt.Sprintf("%d acknowledgements", clusterKillAfter), func() bool {
		return src.acks.Load() >= clusterKillAfter
	})
	nodes[1].kill9(t)
	t.Logf("killed node 2 after %d acknowledgements", src.acks.Load())
	waitFor(t, 90*time.Second, "more acknowledgements from the survivors", func() bool {
		return src.acks.Load() >= 2*clusterKillAfter || src.alive.Load() == 0
	})
	srv.Crash(t) // redis-server: SIGKILL and start again on its AOF
	t.Logf("restarted redis-server after %d acknowledgements", src.acks.Load())
	src.wait()

	// A second, short wave after Redis came back: the survivors take mail
	// again (they reconnect by themselves).
	before := src.acks.Load()
	for _, i := range []int{0, 2} { // the survivors
		src.startSubmit(t, ctx, nodes[i].smtpAddr, node1.relayCA(), node1.account, "n"+strconv.Itoa(i+1)+"w2s", domain, 1, 5)
	}
	src.wait()
	if src.acks.Load() == before {
		t.Errorf("no message acknowledged after redis-server restarted: %s", first(src.problems(), 5))
	}

	waitFor(t, 2*time.Minute, "the shared queue to drain", func() bool { return nodes[0].queueLen(t) == 0 })
	summary, problems := checkDeliveries(src.snapshot(), countMaildir(t, maildirRoot), 0, clusterKillAfter)
	t.Log(summary)
	for _, p := range problems {
		t.Error(p)
	}

	// While Redis is down a node refuses mail with 451 4.3.0 (never a 250
	// it cannot keep); once Redis is back it takes mail again by itself.
	tlsConf := clientTLS(t, node1.relayCA())
	refusals := strings.Count(readLog(t, nodes[0]), "code=451")
	srv.Stop(t)
	down := newSenders()
	if err := down.submitOne(nodes[0].smtpAddr, tlsConf, node1.account, "redis-down@"+domain); err != nil {
		t.Fatalf("submit while redis is down: %v", err)
	}
	if st := down.snapshot()["redis-down@"+domain]; st != refused {
		t.Errorf("while redis is down the message ended in state %v, want refused", st)
	}
	if strings.Count(readLog(t, nodes[0]), "code=451") == refusals {
		t.Errorf("node 1 logged no 451 refusal while redis was down")
	}
	srv.Start(t)
	up := newSenders()
	waitFor(t, 30*time.Second, "a node to take mail again after redis came back", func() bool {
		up.submitOne(nodes[0].smtpAddr, tlsConf, node1.account, "redis-up@"+domain)
		return up.snapshot()["redis-up@"+domain] == acked
	})

	// A suspension made on node 1 holds on node 3 within a second.
	node1.api(t, "POST", "/v1/directory/endpoints/"+epID+"/suspend", `{"reason":"cluster test: practice closed"}`, nil)
	suspended := time.Now()
	for {
		err := rcptOnly(nodes[2].smtpAddr, tlsConf, node1.account, "after-suspension@"+domain)
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code == 550 && se.EnhancedCode == (smtp.EnhancedCode{5, 7, 1}) {
			t.Logf("node 3 refused RCPT %v after the suspension on node 1: %v", time.Since(suspended).Round(time.Millisecond), err)
			break
		}
		if time.Since(suspended) > time.Second {
			t.Fatalf("node 3 still answers RCPT with %v more than 1s after the suspension on node 1", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readLog(t *testing.T, r *relayProc) string {
	t.Helper()
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func clientTLS(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificates", caFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// rcptOnly logs in as acct and returns the node's answer to RCPT TO:<to>.
func rcptOnly(addr string, tlsConf *tls.Config, acct account, to string) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	c, err := smtp.NewClientStartTLS(conn, tlsConf)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", acct.user, acct.pass)); err != nil {
		return err
	}
	if err := c.Mail(acct.from, nil); err != nil {
		return err
	}
	return c.Rcpt(to, nil)
}

// seedDirectory copies the sample directory `nhsrelay init` wrote into
// the node's embedded store into Redis, where cluster nodes read it.
func seedDirectory(t *testing.T, r *relayProc, srv *queuetest.RedisServer) {
	t.Helper()
	src, err := boltstore.Open(filepath.Join(r.dir, "data", "directory.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	snap, err := src.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dst := redisstore.New(srv.Client, "nhsrelay:", redisstore.Options{})
	if err := dst.Apply(t.Context(), batchOf(snap)); err != nil {
		t.Fatal(err)
	}
}

// cloneNode is another node of r's cluster: r's keys, certificates and
// Redis, its own ports, data folder and log.
func cloneNode(t *testing.T, r *relayProc, i int) *relayProc {
	t.Helper()
	var cfg map[string]any
	if _, err := toml.DecodeFile(r.conf, &cfg); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 2)
	n := &relayProc{bin: r.bin, dir: r.dir, account: r.account, token: r.token,
		conf:      filepath.Join(r.dir, fmt.Sprintf("node%d.toml", i)),
		smtpAddr:  fmt.Sprintf("127.0.0.1:%d", p[0]),
		adminAddr: fmt.Sprintf("127.0.0.1:%d", p[1]),
		logPath:   filepath.Join(r.dir, fmt.Sprintf("serve%d.log", i)),
	}
	table(cfg, "server")["data_dir"] = fmt.Sprintf("data%d", i)
	table(cfg, "smtp")["submission_listen"] = n.smtpAddr
	table(cfg, "admin")["listen"] = n.adminAddr
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.conf, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n.cmd != nil {
			n.cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			n.dumpLog(t)
		}
	})
	return n
}
