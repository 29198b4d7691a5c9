package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maintainerEnv runs the .deb's maintainer scripts (packaging/deb) against
// a scratch root: the paths they touch are rewritten into it and the
// system commands (systemctl, useradd, ...) are stubs that record their
// arguments, so the test never changes this machine.
type maintainerEnv struct {
	t         *testing.T
	root, log string
	stubs     string
}

func newMaintainerEnv(t *testing.T) *maintainerEnv {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("SKIP: no sh")
	}
	e := &maintainerEnv{t: t, root: t.TempDir()}
	e.log = filepath.Join(e.root, "calls.log")
	e.stubs = filepath.Join(e.root, "stubs")
	for _, d := range []string{"stubs", "etc/relaybox", "run/systemd/system", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(e.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	record := `echo "$(basename "$0") $*" >>"$CALLS"`
	stubs := map[string]string{
		"systemctl": record,
		"groupadd":  record + "\ntouch \"$STATE/group\"",
		"useradd":   record + "\ntouch \"$STATE/user\"",
		"usermod":   record,
		"chown":     record,
		// The Pi has gpio and dialout; relaybox exists once created.
		"getent": `case "$1 $2" in
"group gpio"|"group dialout") exit 0 ;;
"group relaybox") test -e "$STATE/group" ;;
"passwd relaybox") test -e "$STATE/user" ;;
*) exit 2 ;;
esac`,
		"runuser": `shift 3; exec "$@"`, // runuser -u relaybox -- CMD...
		"install": record + `
mode= dir=
while [ $# -gt 0 ]; do case $1 in -m) mode=$2; shift 2 ;; -o|-g) shift 2 ;; -d) shift ;; *) dir=$1; shift ;; esac; done
mkdir -p "$dir" && chmod "$mode" "$dir"`,
	}
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(e.stubs, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(relayBinary, filepath.Join(e.root, "usr/bin/relaybox")); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs one maintainer script with its arguments; it returns the
// output and the calls the script made.
func (e *maintainerEnv) run(script string, args ...string) (out, calls string) {
	e.t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, "packaging", "deb", script))
	if err != nil {
		e.t.Fatal(err)
	}
	s := strings.NewReplacer(
		"/usr/bin/relaybox", e.root+"/usr/bin/relaybox",
		"/etc/relaybox", e.root+"/etc/relaybox",
		"/var/lib/relaybox", e.root+"/var/lib/relaybox",
		"/run/systemd/system", e.root+"/run/systemd/system",
	).Replace(string(src))
	path := filepath.Join(e.root, script)
	if err := os.WriteFile(path, []byte(s), 0o755); err != nil {
		e.t.Fatal(err)
	}
	_ = os.Remove(e.log)
	cmd := exec.Command("sh", append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+e.stubs+":"+os.Getenv("PATH"), "CALLS="+e.log, "STATE="+e.root)
	b, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("%s %v: %v\n%s", script, args, err, b)
	}
	c, _ := os.ReadFile(e.log)
	return string(b), string(c)
}

func (e *maintainerEnv) writeConfig(content string) string {
	e.t.Helper()
	return writeFile(e.t, filepath.Join(e.root, "etc/relaybox/relaybox.toml"), content)
}

// The package's life: install creates the user (in gpio and dialout) and
// the spool directory and enables the unit, but starts nothing while the
// config holds the sample's placeholders, and says what to do next; once
// the config is edited, configuring starts it; an upgrade keeps the
// spool; remove stops it and keeps config and spool; purge says it
// deletes the spool, then does.
func TestDebMaintainerScripts(t *testing.T) {
	e := newMaintainerEnv(t)
	_, calls := e.run("preinst", "install")
	mustContain(t, calls, "groupadd --system relaybox", "useradd --system --gid relaybox", "usermod -a -G gpio relaybox", "usermod -a -G dialout relaybox")

	sample, err := os.ReadFile(filepath.Join(repoRoot, "board", "rpi", "relaybox.toml"))
	if err != nil {
		t.Fatal(err)
	}
	e.writeConfig(string(sample))
	out, calls := e.run("postinst", "configure", "")
	mustContain(t, calls, "systemctl enable relaybox.service")
	if strings.Contains(calls, "systemctl restart") || strings.Contains(calls, "systemctl start") {
		t.Errorf("postinst started the service on the unedited sample:\n%s", calls)
	}
	mustContain(t, out, "NOT started", "placeholders", "sudoedit", "check-config -ready", "systemctl restart relaybox")
	spool := filepath.Join(e.root, "var/lib/relaybox")
	if fi, err := os.Stat(spool); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool dir: %v %v, want mode 0700", fi, err)
	}

	// The technician edits the config; the next configure (an upgrade
	// here) starts the relay, and the spool is untouched.
	e.writeConfig(strings.ReplaceAll(string(sample), "example.edu", "chem.campus.test"))
	writeFile(t, filepath.Join(spool, "spool.db"), "queued mail")
	_, calls = e.run("prerm", "upgrade", "1.1")
	if strings.Contains(calls, "stop") {
		t.Errorf("prerm stopped the relay for an upgrade:\n%s", calls)
	}
	out, calls = e.run("postinst", "configure", "1.0")
	mustContain(t, calls, "systemctl restart relaybox.service")
	mustContain(t, out, "running")
	if _, err := os.Stat(filepath.Join(spool, "spool.db")); err != nil {
		t.Errorf("upgrade lost the spool: %v", err)
	}

	_, calls = e.run("prerm", "remove")
	mustContain(t, calls, "systemctl stop relaybox.service", "systemctl disable relaybox.service")
	out, _ = e.run("postrm", "remove")
	mustContain(t, out, "kept")
	if _, err := os.Stat(filepath.Join(spool, "spool.db")); err != nil {
		t.Errorf("remove deleted the spool: %v", err)
	}
	out, _ = e.run("postrm", "purge")
	mustContain(t, out, "removing the spool", "deleted")
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Errorf("purge left the spool: %v", err)
	}
}
