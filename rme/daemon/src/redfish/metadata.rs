// SPDX-License-Identifier: GPL-2.0

//! The OData service document and the CSDL `$metadata` document: they
//! name the DMTF schemas of the resources served, so generic clients and
//! validators can find the types of what they read.

use serde_json::{json, Value};

/// (namespace, schema file) of every type the service serves.
const SCHEMAS: &[(&str, &str)] = &[
    ("ServiceRoot", "v1_17_0"),
    ("ComputerSystemCollection", ""),
    ("ComputerSystem", "v1_20_0"),
    ("EthernetInterfaceCollection", ""),
    ("EthernetInterface", "v1_12_0"),
    ("LogServiceCollection", ""),
    ("LogService", "v1_3_0"),
    ("LogEntryCollection", ""),
    ("LogEntry", "v1_9_0"),
    ("StorageCollection", ""),
    ("Storage", "v1_15_0"),
    ("Drive", "v1_18_0"),
    ("ChassisCollection", ""),
    ("Chassis", "v1_25_0"),
    ("ManagerCollection", ""),
    ("Manager", "v1_19_0"),
    ("VirtualMediaCollection", ""),
    ("VirtualMedia", "v1_6_0"),
    ("SessionService", "v1_1_8"),
    ("SessionCollection", ""),
    ("Session", "v1_7_0"),
    ("AccountService", "v1_15_0"),
    ("ManagerAccountCollection", ""),
    ("ManagerAccount", "v1_12_0"),
    ("RoleCollection", ""),
    ("Role", "v1_3_1"),
    ("TaskService", "v1_2_0"),
    ("TaskCollection", ""),
    ("Resource", "v1_19_0"),
    ("Message", "v1_1_1"),
];

pub fn csdl() -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n",
    );
    for (ns, ver) in SCHEMAS {
        x.push_str(&format!(
            "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/{ns}_v1.xml\">\n    <edmx:Include Namespace=\"{ns}\"/>\n"
        ));
        if !ver.is_empty() {
            x.push_str(&format!("    <edmx:Include Namespace=\"{ns}.{ver}\"/>\n"));
        }
        x.push_str("  </edmx:Reference>\n");
    }
    x.push_str(
        "  <edmx:DataServices>\n\
         \x20   <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" Namespace=\"Service\">\n\
         \x20     <EntityContainer Name=\"Service\" Extends=\"ServiceRoot.v1_17_0.ServiceContainer\"/>\n\
         \x20   </Schema>\n\
         \x20 </edmx:DataServices>\n\
         </edmx:Edmx>\n",
    );
    x
}

pub fn service_document() -> Value {
    let items = [
        ("Service", "/redfish/v1/"),
        ("Systems", "/redfish/v1/Systems"),
        ("Chassis", "/redfish/v1/Chassis"),
        ("Managers", "/redfish/v1/Managers"),
        ("SessionService", "/redfish/v1/SessionService"),
        ("AccountService", "/redfish/v1/AccountService"),
        ("TaskService", "/redfish/v1/TaskService"),
        ("Sessions", "/redfish/v1/SessionService/Sessions"),
    ];
    let value: Vec<Value> = items
        .iter()
        .map(|(n, u)| json!({"name": n, "kind": "Singleton", "url": u}))
        .collect();
    json!({"@odata.context": "/redfish/v1/$metadata", "value": value})
}
