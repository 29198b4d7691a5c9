package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The sample configs users start from pass check-config as shipped, with
// a warning for each placeholder; -ready refuses them until the
// placeholders are edited (the rule the .deb's postinst and install.sh
// start the service by).
func TestBoardSampleConfigs(t *testing.T) {
	for _, board := range []string{"rpi", "linux", "windows"} {
		t.Run(board, func(t *testing.T) {
			sample := filepath.Join(repoRoot, "board", board, "relaybox.toml")
			out, err := exec.Command(relayBinary, "check-config", "-config", sample).CombinedOutput()
			if err != nil {
				t.Fatalf("check-config on the shipped sample: %v\n%s", err, out)
			}
			mustContain(t, string(out), "config OK", "upstream[0].address = \"smtp.example.edu:587\" is the sample's placeholder")

			cmd := exec.Command(relayBinary, "check-config", "-ready", "-config", sample)
			out, err = cmd.CombinedOutput()
			if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "still holds the sample's placeholders") {
				t.Errorf("-ready on the sample: %v\n%s", err, out)
			}

			b, err := os.ReadFile(sample)
			if err != nil {
				t.Fatal(err)
			}
			filled := writeFile(t, filepath.Join(t.TempDir(), "relaybox.toml"), strings.ReplaceAll(string(b), "example.edu", "chem.campus.test"))
			out, err = exec.Command(relayBinary, "check-config", "-ready", "-config", filled).CombinedOutput()
			if err != nil || strings.Contains(string(out), "placeholder") {
				t.Errorf("-ready on an edited copy: %v\n%s", err, out)
			}
			if board == "windows" && !strings.Contains(string(b), `data_dir = 'C:\ProgramData\relaybox\data'`) {
				t.Error("the Windows sample must keep its data under C:\\ProgramData\\relaybox")
			}
		})
	}
}
