//! The county directory: grids, agents and catalogue matters, loaded from
//! CSV text, and the resolution of a free-form address to a grid.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use serde::Deserialize;

use crate::codes::{AgentId, CountyCode, GridCode, MatterCode, PhoneNumber, TownshipCode};

/// A matter's difficulty class, which decides its base points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatterClass {
    One,
    Two,
}

impl MatterClass {
    pub fn from_number(number: i64) -> Option<Self> {
        match number {
            1 => Some(Self::One),
            2 => Some(Self::Two),
            _ => None,
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Self::One => 1,
            Self::Two => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentRole {
    GridWorker,
    VillageCadre,
    AuxiliaryPolice,
}

impl AgentRole {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "grid_worker" => Some(Self::GridWorker),
            "village_cadre" => Some(Self::VillageCadre),
            "auxiliary_police" => Some(Self::AuxiliaryPolice),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GridWorker => "grid_worker",
            Self::VillageCadre => "village_cadre",
            Self::AuxiliaryPolice => "auxiliary_police",
        }
    }

    /// The role's name in statements that people read.
    pub fn chinese_name(self) -> &'static str {
        match self {
            Self::GridWorker => "网格员",
            Self::VillageCadre => "村干部",
            Self::AuxiliaryPolice => "村辅警",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Township {
    pub code: TownshipCode,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    pub code: GridCode,
    pub name: String,
    pub township: Township,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    pub phone: PhoneNumber,
    pub grid: GridCode,
    pub role: AgentRole,
    pub active: bool,
    /// The day the agent joined, when the directory gives one; `None`
    /// means before any year the service reports on.
    pub joined: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matter {
    pub code: MatterCode,
    pub name: String,
    pub class: MatterClass,
    pub department: String,
}

/// Why a directory file could not be loaded; names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{file}: {source}")]
    Csv {
        file: &'static str,
        #[source]
        source: csv::Error,
    },
    #[error("{file} line {line}: {message}")]
    Row {
        file: &'static str,
        line: u64,
        message: String,
    },
    #[error("{file} has no rows")]
    Empty { file: &'static str },
}

/// The grids, agents and matters of one or more counties.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    grids: BTreeMap<GridCode, Grid>,
    agents: BTreeMap<AgentId, Agent>,
    agents_by_phone: HashMap<PhoneNumber, AgentId>,
    matters: BTreeMap<MatterCode, Matter>,
    /// Address keys of each township: its name and, per grid, the grid's
    /// place names, longest first.
    places: BTreeMap<TownshipCode, TownshipPlaces>,
}

#[derive(Debug, Clone, Default)]
struct TownshipPlaces {
    name: String,
    grid_keys: Vec<(String, GridCode)>,
}

#[derive(Deserialize)]
struct GridRow {
    code: String,
    name: String,
    township_code: String,
    township_name: String,
}

#[derive(Deserialize)]
struct AgentRow {
    agent_id: String,
    name: String,
    phone: String,
    grid_code: String,
    role: String,
    active: String,
    /// Optional column: the day the agent joined, as `YYYY-MM-DD`.
    #[serde(default)]
    joined: Option<String>,
}

#[derive(Deserialize)]
struct MatterRow {
    matter_code: String,
    name: String,
    class: String,
    department: String,
}

const GRIDS_FILE: &str = "grids.csv";
const AGENTS_FILE: &str = "agents.csv";
const MATTERS_FILE: &str = "matters.csv";

impl Directory {
    /// The bundled demo directory of Lanshan County (`431127`): its 228 real
    /// grids, synthetic agents and a synthetic catalogue of 100 matters.
    pub fn lanshan_demo() -> Self {
        Self::from_csv(
            include_str!("../../../data/lanshan/grids.csv"),
            include_str!("../../../data/lanshan/agents.csv"),
            include_str!("../../../data/lanshan/matters.csv"),
        )
        .expect("the bundled demo directory is valid")
    }

    /// Builds a directory from the text of `grids.csv` (`code`, `name`,
    /// `township_code`, `township_name`), `agents.csv` (`agent_id`, `name`,
    /// `phone`, `grid_code`, `role`, `active`, and optionally `joined` as
    /// `YYYY-MM-DD`) and `matters.csv` (`matter_code`, `name`, `class`,
    /// `department`).
    pub fn from_csv(grids: &str, agents: &str, matters: &str) -> Result<Self, DirectoryError> {
        let mut directory = Self::default();
        for (line, row) in rows::<GridRow>(GRIDS_FILE, grids)? {
            directory.add_grid(line, row)?;
        }
        for (line, row) in rows::<AgentRow>(AGENTS_FILE, agents)? {
            directory.add_agent(line, row)?;
        }
        for (line, row) in rows::<MatterRow>(MATTERS_FILE, matters)? {
            directory.add_matter(line, row)?;
        }
        for places in directory.places.values_mut() {
            places
                .grid_keys
                .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        }
        Ok(directory)
    }

    fn add_grid(&mut self, line: u64, row: GridRow) -> Result<(), DirectoryError> {
        let err = |message: String| DirectoryError::Row {
            file: GRIDS_FILE,
            line,
            message,
        };
        let code = GridCode::parse(&row.code).map_err(|e| err(e.0))?;
        let township_code = TownshipCode::parse(&row.township_code).map_err(|e| err(e.0))?;
        if code.township() != township_code {
            return Err(err(format!(
                "grid {code} is not in township {township_code}"
            )));
        }
        let name = non_empty(&row.name, "name").map_err(err)?;
        let township_name = non_empty(&row.township_name, "township_name").map_err(err)?;
        if self.grids.contains_key(&code) {
            return Err(err(format!("grid {code} appears twice")));
        }

        let places = self.places.entry(township_code.clone()).or_default();
        places.name = township_name.clone();
        for key in place_keys(&name) {
            places.grid_keys.push((key, code.clone()));
        }
        let township = Township {
            code: township_code,
            name: township_name,
        };
        self.grids.insert(
            code.clone(),
            Grid {
                code,
                name,
                township,
            },
        );
        Ok(())
    }

    fn add_agent(&mut self, line: u64, row: AgentRow) -> Result<(), DirectoryError> {
        let err = |message: String| DirectoryError::Row {
            file: AGENTS_FILE,
            line,
            message,
        };
        let id = AgentId::parse(&row.agent_id).map_err(|e| err(e.0))?;
        let phone = PhoneNumber::parse(&row.phone).map_err(|e| err(e.0))?;
        let grid = GridCode::parse(&row.grid_code).map_err(|e| err(e.0))?;
        if !self.grids.contains_key(&grid) {
            return Err(err(format!(
                "agent {id} names grid {grid}, which grids.csv does not list"
            )));
        }
        let role = AgentRole::parse(row.role.trim()).ok_or_else(|| {
            err(format!(
                "role must be grid_worker, village_cadre or auxiliary_police, got {:?}",
                row.role
            ))
        })?;
        let active = match row.active.trim() {
            "true" => true,
            "false" => false,
            other => return Err(err(format!("active must be true or false, got {other:?}"))),
        };
        let joined = match row.joined.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                err(format!(
                    "joined must be a date such as 2026-03-01, or empty, got {text:?}"
                ))
            })?),
        };
        let name = non_empty(&row.name, "name").map_err(err)?;
        if self.agents.contains_key(&id) {
            return Err(err(format!("agent {id} appears twice")));
        }
        if let Some(other) = self.agents_by_phone.insert(phone.clone(), id.clone()) {
            return Err(err(format!(
                "agent {id} has the same phone as agent {other}"
            )));
        }
        self.agents.insert(
            id.clone(),
            Agent {
                id,
                name,
                phone,
                grid,
                role,
                active,
                joined,
            },
        );
        Ok(())
    }

    fn add_matter(&mut self, line: u64, row: MatterRow) -> Result<(), DirectoryError> {
        let err = |message: String| DirectoryError::Row {
            file: MATTERS_FILE,
            line,
            message,
        };
        let code = MatterCode::parse(&row.matter_code).map_err(|e| err(e.0))?;
        let class = row
            .class
            .trim()
            .parse()
            .ok()
            .and_then(MatterClass::from_number)
            .ok_or_else(|| err(format!("class must be 1 or 2, got {:?}", row.class)))?;
        let name = non_empty(&row.name, "name").map_err(err)?;
        if self.matters.contains_key(&code) {
            return Err(err(format!("matter {code} appears twice")));
        }
        let department = row.department.trim().to_owned();
        self.matters.insert(
            code.clone(),
            Matter {
                code,
                name,
                class,
                department,
            },
        );
        Ok(())
    }

    pub fn grid(&self, code: &GridCode) -> Option<&Grid> {
        self.grids.get(code)
    }

    pub fn grids(&self) -> impl Iterator<Item = &Grid> {
        self.grids.values()
    }

    pub fn agent(&self, id: &AgentId) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    pub fn agent_by_phone(&self, phone: &PhoneNumber) -> Option<&Agent> {
        self.agents_by_phone
            .get(phone)
            .and_then(|id| self.agents.get(id))
    }

    pub fn matter(&self, code: &MatterCode) -> Option<&Matter> {
        self.matters.get(code)
    }

    pub fn matters(&self) -> impl Iterator<Item = &Matter> {
        self.matters.values()
    }

    /// The counties that have at least one grid, in code order.
    pub fn counties(&self) -> BTreeSet<CountyCode> {
        self.grids.keys().map(GridCode::county).collect()
    }

    pub fn active_agents_in_grid<'a>(
        &'a self,
        grid: &'a GridCode,
    ) -> impl Iterator<Item = &'a Agent> + 'a {
        self.agents
            .values()
            .filter(move |a| a.active && &a.grid == grid)
    }

    pub fn active_agents_in_county<'a>(
        &'a self,
        county: &'a CountyCode,
    ) -> impl Iterator<Item = &'a Agent> + 'a {
        self.agents
            .values()
            .filter(move |a| a.active && &a.grid.county() == county)
    }

    /// Resolves a contact address such as `蓝山县塔峰镇友谊村大塘边` to a grid
    /// of `county` (of any county when `None`).
    ///
    /// The address must name a township and, right after it, one of that
    /// township's villages or communities (with or without the
    /// `村`/`社区` suffix). Failing that, a grid name with its suffix that
    /// appears in exactly one township anywhere in the address is taken.
    /// Anything else resolves to no grid.
    pub fn resolve_address(&self, address: &str, county: Option<&CountyCode>) -> Option<GridCode> {
        let in_county = |code: &TownshipCode| county.is_none_or(|c| &code.county() == c);

        let mut best: Option<(usize, &GridCode)> = None;
        for places in self
            .places
            .iter()
            .filter(|(code, _)| in_county(code))
            .map(|(_, p)| p)
        {
            for (start, _) in address.match_indices(places.name.as_str()) {
                let rest = &address[start + places.name.len()..];
                if let Some((key, grid)) = places
                    .grid_keys
                    .iter()
                    .find(|(key, _)| rest.starts_with(key.as_str()))
                {
                    let score = places.name.len() + key.len();
                    if best.is_none_or(|(s, _)| score > s) {
                        best = Some((score, grid));
                    }
                }
            }
        }
        if let Some((_, grid)) = best {
            return Some(grid.clone());
        }

        let mut found: Option<&GridCode> = None;
        for (_, places) in self.places.iter().filter(|(code, _)| in_county(code)) {
            for (key, grid) in &places.grid_keys {
                let has_suffix = key.ends_with('村') || key.ends_with("社区");
                if has_suffix && key.chars().count() >= 3 && address.contains(key.as_str()) {
                    if found.is_some_and(|f| f != grid) {
                        return None;
                    }
                    found = Some(grid);
                }
            }
        }
        found.cloned()
    }
}

/// The names an address may use for a grid: `友谊村委会` gives `友谊村`;
/// `辅仁社区居委会` gives `辅仁社区` and `辅仁`; `新街居委会` gives `新街`.
fn place_keys(grid_name: &str) -> Vec<String> {
    let mut base = grid_name.trim();
    for suffix in ["居民委员会", "村民委员会", "委员会", "居委会", "委会"] {
        if let Some(stripped) = base.strip_suffix(suffix) {
            base = stripped;
            break;
        }
    }
    let mut keys = vec![base.to_owned()];
    for suffix in ["社区", "村"] {
        if let Some(short) = base.strip_suffix(suffix)
            && short.chars().count() >= 2
        {
            keys.push(short.to_owned());
        }
    }
    keys.retain(|k| !k.is_empty());
    keys
}

fn non_empty(text: &str, column: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        Err(format!("{column} is empty"))
    } else {
        Ok(text.to_owned())
    }
}

fn rows<T: serde::de::DeserializeOwned>(
    file: &'static str,
    text: &str,
) -> Result<Vec<(u64, T)>, DirectoryError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for record in reader.deserialize() {
        let row: T = record.map_err(|source| DirectoryError::Csv { file, source })?;
        let line = out.len() as u64 + 2;
        out.push((line, row));
    }
    if out.is_empty() {
        return Err(DirectoryError::Empty { file });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanshan() -> Directory {
        Directory::lanshan_demo()
    }

    fn grid_name(dir: &Directory, code: Option<GridCode>) -> Option<String> {
        code.map(|c| dir.grid(&c).expect("resolved grid exists").name.clone())
    }

    #[test]
    fn demo_directory_loads() {
        let dir = lanshan();
        assert_eq!(dir.grids().count(), 228);
        assert_eq!(dir.agents().count(), 546);
        assert_eq!(dir.matters().count(), 100);
        let counties: Vec<_> = dir.counties().into_iter().map(|c| c.to_string()).collect();
        assert_eq!(counties, ["431127"]);
    }

    #[test]
    fn address_resolves_village_and_community() {
        let dir = lanshan();
        let cases = [
            ("蓝山县塔峰镇友谊村大塘边", "友谊村委会"),
            ("蓝山县塔峰镇舜峰社区5组", "舜峰社区居委会"),
            ("蓝山县塔峰镇新街8组", "新街居委会"),
            ("蓝山县所城镇所城新屋", "所城居委会"),
            ("蓝山县荆竹瑶族乡新寨村8组", "新寨村委会"),
            ("蓝山县蓝山南岭林场南岭林场虚拟社区新屋", "南岭林场虚拟社区"),
        ];
        for (address, expected) in cases {
            assert_eq!(
                grid_name(&dir, dir.resolve_address(address, None)).as_deref(),
                Some(expected),
                "{address}"
            );
        }
    }

    #[test]
    fn address_outside_county_is_unresolved() {
        let dir = lanshan();
        for address in [
            "永州市冷水滩区",
            "县城租房住",
            "不清楚，在外务工",
            "广东省东莞市长安镇",
            "",
        ] {
            assert_eq!(dir.resolve_address(address, None), None, "{address}");
        }
    }

    #[test]
    fn address_filters_by_county() {
        let dir = lanshan();
        let other = CountyCode::parse("430000").unwrap();
        assert_eq!(
            dir.resolve_address("蓝山县塔峰镇友谊村大塘边", Some(&other)),
            None
        );
    }

    #[test]
    fn demo_requests_mostly_resolve() {
        let dir = lanshan();
        let text = include_str!("../../../data/lanshan/requests.csv");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let (mut with_address, mut resolved) = (0, 0);
        for record in reader.records() {
            let record = record.unwrap();
            let address = &record[6];
            if address.is_empty() {
                continue;
            }
            with_address += 1;
            if dir.resolve_address(address, None).is_some() {
                resolved += 1;
            }
        }
        assert!(with_address > 300, "{with_address}");
        // About 3% of all rows carry an address that names no grid.
        let unresolved = with_address - resolved;
        assert!(
            unresolved > 30 && unresolved < 120,
            "unresolved {unresolved} of {with_address}"
        );
    }

    #[test]
    fn joined_column_is_optional() {
        let grids =
            "code,name,township_code,township_name\n431127100008,甲社区居委会,431127100,塔峰镇\n";
        let matters = "matter_code,name,class,department\nM1,我要开餐馆,2,市场监管\n";
        let agents = "agent_id,name,phone,grid_code,role,active,joined\n\
                      A1,张三,13812341234,431127100008,grid_worker,true,2026-03-01\n\
                      A2,李四,13812341235,431127100008,village_cadre,true,\n";
        let dir = Directory::from_csv(grids, agents, matters).unwrap();
        let joined = |id: &str| dir.agent(&AgentId::parse(id).unwrap()).unwrap().joined;
        assert_eq!(joined("A1"), NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(joined("A2"), None);
        assert!(lanshan().agents().all(|a| a.joined.is_none()));

        let agents = "agent_id,name,phone,grid_code,role,active,joined\n\
                      A1,张三,13812341234,431127100008,grid_worker,true,2026/03/01\n";
        let err = Directory::from_csv(grids, agents, matters)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("agents.csv line 2: joined must be a date"),
            "{err}"
        );
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let grids =
            "code,name,township_code,township_name\n431127100008,甲社区居委会,431127100,塔峰镇\n";
        let agents = "agent_id,name,phone,grid_code,role,active\nA1,张三,13812341234,431127100009,grid_worker,true\n";
        let matters = "matter_code,name,class,department\nM1,我要开餐馆,2,市场监管\n";
        let err = Directory::from_csv(grids, agents, matters)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "agents.csv line 2: agent A1 names grid 431127100009, which grids.csv does not list"
        );

        let matters = "matter_code,name,class,department\nM1,我要开餐馆,3,市场监管\n";
        let agents = "agent_id,name,phone,grid_code,role,active\nA1,张三,13812341234,431127100008,grid_worker,true\n";
        let err = Directory::from_csv(grids, agents, matters)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("matters.csv line 2: class must be 1 or 2"),
            "{err}"
        );
    }
}
