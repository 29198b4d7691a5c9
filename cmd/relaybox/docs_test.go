package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const repoRoot = "../.."

// The README names every subcommand that `relaybox help` lists.
func TestREADMENamesEverySubcommand(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	usage(&b)
	_, list, _ := strings.Cut(b.String(), "commands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	names := regexp.MustCompile(`(?m)^  ([a-z][a-z-]+) `).FindAllStringSubmatch(list, -1)
	if len(names) < 12 {
		t.Fatalf("found %d commands in the usage text", len(names))
	}
	for _, n := range names {
		if !bytes.Contains(readme, []byte("`relaybox "+n[1])) {
			t.Errorf("README.md does not name `relaybox %s`: add it to the \"Every command\" table", n[1])
		}
	}
}

// The README's Layout and docs/design.md's package map list every package.
func TestLayoutListsEveryPackage(t *testing.T) {
	var pkgs []string
	for _, top := range []string{"internal", "cmd"} {
		dirs, err := os.ReadDir(filepath.Join(repoRoot, top))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if d.IsDir() {
				pkgs = append(pkgs, top+"/"+d.Name()+"/")
			}
		}
	}
	for _, doc := range []string{"README.md", "docs/design.md"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkgs {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(p) + ` `).Match(b) {
				t.Errorf("%s does not list %s in its package layout: add a line \"%s  what it does\"", doc, p, p)
			}
		}
	}
}

// A clone explains, builds and benchmarks itself: no file points at the
// team's notes outside the repository.
func TestNothingPointsOutsideTheRepository(t *testing.T) {
	outside := []string{".." + "/shared", "/work" + "/shared", "shared" + "/bench", "shared" + "/DESIGN"}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "dist", "bin", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 4<<20 || !info.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, o := range outside {
			if bytes.Contains(b, []byte(o)) {
				rel, _ := filepath.Rel(repoRoot, path)
				t.Errorf("%s refers to %q, outside the repository: point at the repository's own docs or scripts instead", rel, o)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
