package config

import (
	"strings"
	"testing"
	"time"
)

func TestSizeUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string // substring; "" means success
	}{
		{"50MiB", 50 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"512KiB", 512 << 10, ""},
		{"2TiB", 2 << 40, ""},
		{"10MB", 10_000_000, ""},
		{"3KB", 3000, ""},
		{"1GB", 1_000_000_000, ""},
		{"1048576", 1 << 20, ""},
		{"100B", 100, ""},
		{"50mib", 50 << 20, ""}, // units without regard to case
		{"0", 0, ""},            // parseable; Validate refuses it where it matters
		{"50 MB", 0, `cannot parse "50 MB": use a size like 50MiB`},
		{"-5MiB", 0, "negative"},
		{"-1", 0, "negative"},
		{"1.5GiB", 0, "use a size like"},
		{"50M", 0, "use a size like"},
		{"MiB", 0, "use a size like"},
		{"", 0, "use a size like"},
		{"lots", 0, "use a size like"},
		{"+5", 0, "use a size like"},
		{"0x10", 0, "use a size like"},
		{"9999999TiB", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
	}
	for _, tt := range tests {
		var s Size
		err := s.UnmarshalText([]byte(tt.in))
		if tt.wantErr == "" {
			if err != nil || s != tt.want {
				t.Errorf("Size(%q) = %d, %v; want %d", tt.in, s, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Size(%q) error = %v; want it to contain %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{50 * MiB, "50MiB"},
		{GiB, "1GiB"},
		{1536 * MiB, "1536MiB"},
		{512 * KiB, "512KiB"},
		{10_000_000, "10MB"},
		{1000, "1KB"},
		{1023, "1023"},
		{0, "0"},
		{2 * TiB, "2TiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q; want %q", int64(tt.in), got, tt.want)
		}
		b, _ := tt.in.MarshalText()
		var back Size
		if err := back.UnmarshalText(b); err != nil || back != tt.in {
			t.Errorf("round trip of %d via %q = %d, %v", int64(tt.in), b, back, err)
		}
	}
}

func TestDurationUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"5m", 5 * time.Minute, ""},
		{"120h", 120 * time.Hour, ""},
		{"30s", 30 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"5d", 120 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"0", 0, ""},
		{"-5m", 0, "negative"},
		{"-1d", 0, "negative"},
		{"1d-5h", 0, "use a duration like"},
		{"1.5d", 0, "use a duration like"},
		{"d", 0, "use a duration like"},
		{"5 m", 0, "use a duration like"},
		{"300", 0, "use a duration like"}, // a bare number has no unit
		{"", 0, "use a duration like"},
		{"soon", 0, "use a duration like"},
		{"999999999d", 0, "too large"},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if tt.wantErr == "" {
			if err != nil || d.D() != tt.want {
				t.Errorf("Duration(%q) = %v, %v; want %v", tt.in, d.D(), err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Duration(%q) error = %v; want it to contain %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{5 * time.Minute, "5m"},
		{120 * time.Hour, "120h"},
		{30 * time.Second, "30s"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{1500 * time.Millisecond, "1.5s"},
		{0, "0s"},
	}
	for _, tt := range tests {
		d := Duration(tt.in)
		if got := d.String(); got != tt.want {
			t.Errorf("Duration(%v).String() = %q; want %q", tt.in, got, tt.want)
		}
		b, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back != d {
			t.Errorf("round trip of %v via %q = %v, %v", tt.in, b, back.D(), err)
		}
	}
}
