package smtpd

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDeviceMatch(t *testing.T) {
	ds, err := newDevices([]Device{
		{Name: "floor-2", Networks: []string{"10.0.2.0/24"}},
		{Name: "scanner-3", AuthUser: "scanner"},
		{Name: "ricoh", AuthUser: "ricoh", Networks: []string{"10.0.9.0/24"}},
		{Name: "single", Networks: []string{"10.0.3.7"}},
		{Name: "lab", Networks: []string{"10.0.0.0/8"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ip, user, want string
	}{
		{"10.0.2.5", "", "floor-2"},
		{"10.0.2.5", "scanner", "scanner-3"}, // the AUTH user wins over the network
		{"10.0.2.5", "ricoh", "floor-2"},     // ricoh only counts from its network
		{"10.0.9.1", "ricoh", "ricoh"},
		{"10.0.3.7", "", "single"},
		{"10.0.3.8", "", "lab"}, // first network match in order after the specific one
		{"192.168.1.1", "", ""},
		{"192.168.1.1", "nobody", ""},
		{"::ffff:10.0.2.5", "", "floor-2"},
	}
	for _, tt := range tests {
		got := ds.match(netip.MustParseAddr(tt.ip).Unmap(), tt.user).name()
		if got != tt.want {
			t.Errorf("match(%s, %q) = %q, want %q", tt.ip, tt.user, got, tt.want)
		}
	}
}

func TestNewDevicesRefusesBadEntries(t *testing.T) {
	tests := []struct {
		d    []Device
		want string
	}{
		{[]Device{{Networks: []string{"10.0.0.0/8"}}}, "no name"},
		{[]Device{{Name: "a", AuthUser: "x"}, {Name: "a", AuthUser: "y"}}, `"a" is used twice`},
		{[]Device{{Name: "a"}}, "give networks or auth_user"},
		{[]Device{{Name: "a", Networks: []string{"10.0.0/8"}}}, `device "a"`},
		{[]Device{{Name: "a", AuthUser: "x", Sender: "scanner"}}, `sender "scanner"`},
	}
	for _, tt := range tests {
		_, err := newDevices(tt.d)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "smtpd: ") {
			t.Errorf("newDevices(%+v) = %v, want an error containing %q", tt.d, err, tt.want)
		}
	}
}
