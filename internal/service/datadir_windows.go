package service

import (
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// PrepareDataDir creates the spool's directory and gives it a protected
// ACL: full control for SYSTEM (the service) and Administrators, nothing
// for anyone else and nothing inherited from %ProgramData% (where Users
// may read). This is the Windows spelling of mode 0700. A non-empty owner
// (a custom service account) gets full control too.
func PrepareDataDir(dir, owner string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("service: create data dir: %w", err)
	}
	sddl := "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
	if owner != "" {
		sid, _, _, err := windows.LookupSID("", owner)
		if err != nil {
			return fmt.Errorf("service: data dir owner %s: %w", owner, err)
		}
		sddl += "(A;OICI;FA;;;" + sid.String() + ")"
	}
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return fmt.Errorf("service: data dir ACL: %w", err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("service: data dir ACL: %w", err)
	}
	err = windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
	if err != nil {
		return fmt.Errorf("service: set data dir ACL: %w", err)
	}
	return nil
}
