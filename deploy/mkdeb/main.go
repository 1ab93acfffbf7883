// Command mkdeb builds the nhsrelay Debian package with nfpm
// (github.com/goreleaser/nfpm/v2) used as a library: the binary, the
// systemd unit, the default config as a conffile, the maintainer scripts
// and the documentation. `make deb` runs it.
//
// It is a module of its own so that nfpm and its dependencies stay out of
// the relay's go.mod and binary.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the "deb" packager
	"github.com/goreleaser/nfpm/v2/files"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/nhsrelay", "the nhsrelay `binary` to package (linux)")
	flag.StringVar(&o.repo, "repo", ".", "the repository's top `folder` (deploy/, README.md, cmd/)")
	flag.StringVar(&o.version, "version", "0.0.0", "package `version` (Debian syntax, starts with a digit)")
	flag.StringVar(&o.arch, "arch", "amd64", "Debian `architecture` of the binary")
	flag.StringVar(&o.out, "o", "", "output `file` (default: the conventional name in the current folder)")
	flag.Parse()
	path, err := build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

type options struct {
	bin, repo, version, arch, out string
	mtime                         time.Time // zero: SOURCE_DATE_EPOCH or now (nfpm's default)
}

// info describes the package: what goes where, with which mode.
func info(o options) *nfpm.Info {
	deploy := func(p string) string { return filepath.Join(o.repo, "deploy", p) }
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode, MTime: o.mtime}}
	}
	conf := file(deploy("nhsrelay.toml"), "/etc/nhsrelay/nhsrelay.toml", 0o644)
	conf.Type = files.TypeConfigNoReplace // dpkg keeps the operator's changes (a conffile)
	return nfpm.WithDefaults(&nfpm.Info{
		Name:          "nhsrelay",
		Arch:          o.arch,
		Platform:      "linux",
		Version:       o.version,
		VersionSchema: "none", // Debian syntax as given, not semver
		Section:       "mail",
		Priority:      "optional",
		Maintainer:    "nhsrelay maintainers <nhsrelay@nhs.example>",
		Description: "secure SMTP relay that replaces fax in the NHS\n" +
			"One binary: SMTP submission (587, 465) with AUTH, MX (25) for endpoints\n" +
			"hosted here, S/MIME signing and encryption to the NHS directory's\n" +
			"certificates, a durable encrypted queue, DSNs and a hash-chained audit log.",
		License: "proprietary",
		MTime:   o.mtime,
		Overridables: nfpm.Overridables{
			// passwd: useradd and groupadd in preinst; systemd: the unit.
			Depends:    []string{"passwd"},
			Recommends: []string{"systemd"},
			Contents: files.Contents{
				file(o.bin, "/usr/bin/nhsrelay", 0o755),
				file(deploy("nhsrelay.service"), "/usr/lib/systemd/system/nhsrelay.service", 0o644),
				conf,
				file(filepath.Join(o.repo, "README.md"), "/usr/share/doc/nhsrelay/README.md", 0o644),
				file(filepath.Join(o.repo, "cmd", "nhsrelay", "nhsrelay.example.toml"), "/usr/share/doc/nhsrelay/nhsrelay.example.toml", 0o644),
			},
			Scripts: nfpm.Scripts{
				PreInstall:  deploy("debian/preinst"),
				PostInstall: deploy("debian/postinst"),
				PreRemove:   deploy("debian/prerm"),
				PostRemove:  deploy("debian/postrm"),
			},
		},
	})
}

// build writes the package and returns its path.
func build(o options) (string, error) {
	if _, err := os.Stat(o.bin); err != nil {
		return "", fmt.Errorf("binary: %w (run make build first)", err)
	}
	in := info(o)
	if err := in.Validate(); err != nil {
		return "", fmt.Errorf("package description: %w", err)
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	path := o.out
	if path == "" {
		path = pkg.ConventionalFileName(in)
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	in.Target = path
	if err := pkg.Package(in, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("package: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}
