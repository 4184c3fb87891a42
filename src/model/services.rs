//! Floor L0 (`model`). Names of well-known authentication and management service ports, as the
//! brute-force and admin-access detectors write them in alerts.

/// Name of a well-known authentication service port.
pub fn service_name(port: u16) -> Option<&'static str> {
    Some(match port {
        21 => "ftp",
        22 => "ssh",
        23 => "telnet",
        88 => "kerberos",
        139 => "netbios-ssn",
        161 => "snmp",
        389 => "ldap",
        445 => "smb",
        623 => "ipmi",
        636 => "ldaps",
        3389 => "rdp",
        5900 => "vnc",
        5985 => "winrm",
        5986 => "winrm-https",
        8443 => "https-mgmt",
        _ => return None,
    })
}
