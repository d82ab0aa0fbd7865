//! Redis memory per pending order, against the order's own size encoded as
//! a `daiban.v1.WorkOrder` message.

use daiban_domain::{CountyCode, OrderId};
use daiban_proto::v1 as pb;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::service::APP_KEY;
use daiban_tests::with_bearer;
use prost::Message;
use tonic::transport::Channel;

use super::probe::{HashShape, KeyKind, Probe};

/// Orders whose encoded size is measured at each level.
const ENCODED_SAMPLE: usize = 200;

/// The memory of the orders loaded in one step.
#[derive(Debug, Clone)]
pub struct Memory {
    /// Orders loaded in the step.
    pub loaded: usize,
    /// Growth of `used_memory` over the step.
    pub grown: i64,
    /// Mean size of a loaded order as `GetWorkOrder` returns it, encoded.
    pub encoded: f64,
    /// Every key of the county after the step, by kind.
    pub kinds: Vec<KeyKind>,
    /// Orders stored in all, including those of earlier steps.
    pub orders_stored: u64,
    /// Mean contents of the measured order hashes.
    pub hash_fields: f64,
    pub hash_name_bytes: f64,
    pub hash_value_bytes: f64,
    pub alternatives: Alternatives,
}

impl Memory {
    pub fn per_order(&self) -> f64 {
        self.grown as f64 / self.loaded.max(1) as f64
    }

    pub fn ratio(&self) -> f64 {
        self.per_order() / self.encoded.max(f64::MIN_POSITIVE)
    }
}

/// The kind of key of an order's hash, as `Probe::key_kinds` names it.
/// NOTE: this follows the key layout of `RedisStore`; after a change of
/// layout the hash figures stay empty, while the totals stay right.
const ORDER_HASH_KIND: &str = "order:*";

/// Measures the memory of the orders `loaded`, given `used_memory` before
/// and after loading them, and the keys under the county prefix.
pub async fn measure(
    probe: &Probe,
    channel: &Channel,
    county: &CountyCode,
    loaded: &[OrderId],
    before: u64,
    after: u64,
) -> Memory {
    let kinds = probe.key_kinds().await;
    let order_hashes = kinds.iter().find(|k| k.pattern == ORDER_HASH_KIND);
    let mut shapes = Vec::new();
    for key in order_hashes
        .map(|k| k.examples.as_slice())
        .unwrap_or_default()
    {
        shapes.push(probe.hash_shape(key).await);
    }
    let mean = |part: fn(&HashShape) -> usize| {
        shapes.iter().map(part).sum::<usize>() as f64 / shapes.len().max(1) as f64
    };
    let examples = order_hashes
        .map(|k| k.examples.as_slice())
        .unwrap_or_default();
    let alternatives = alternatives(probe, channel, county, examples).await;

    Memory {
        loaded: loaded.len(),
        grown: after as i64 - before as i64,
        encoded: encoded_mean(channel, loaded).await,
        orders_stored: order_hashes.map_or(0, |k| k.keys),
        hash_fields: mean(|s| s.fields),
        hash_name_bytes: mean(|s| s.name_bytes),
        hash_value_bytes: mean(|s| s.value_bytes),
        alternatives,
        kinds,
    }
}

/// Returns the mean encoded size of up to `ENCODED_SAMPLE` of `orders`,
/// spread evenly, as `GetWorkOrder` returns them to the app backend.
async fn encoded_mean(channel: &Channel, orders: &[OrderId]) -> f64 {
    let mut client = WorkOrderServiceClient::new(channel.clone());
    let step = orders.len().div_ceil(ENCODED_SAMPLE).max(1);
    let mut total = 0;
    let mut count = 0;
    for id in orders.iter().step_by(step) {
        total += get_order(&mut client, id).await.encoded_len();
        count += 1;
    }
    total as f64 / count.max(1) as f64
}

/// Mean `MEMORY USAGE` of copies of stored orders, written under one
/// scratch key in other ways, to show what a change of the order's layout
/// would save. Every variant uses the same key name, so only the contents
/// differ.
#[derive(Debug, Clone, Default)]
pub struct Alternatives {
    pub orders: usize,
    /// A copy of the hash as `RedisStore` writes it.
    pub as_stored: f64,
    /// The same hash with `hash-max-listpack-value` raised, so that no
    /// long value turns it into a hashtable.
    pub all_listpack: f64,
    /// The same hash with one- or two-letter field names.
    pub short_names: f64,
    /// Short names, and the fields with an empty value left out.
    pub short_names_without_empty: f64,
    /// The order as one string: its `daiban.v1.WorkOrder` encoding.
    pub encoded_string: f64,
    /// One member, an order's sequence number, of a sorted set small
    /// enough for the compact listpack encoding.
    pub listpack_set_entry: f64,
    /// One member of a sorted set too large for a listpack, which Redis
    /// keeps as a skiplist with a hash table.
    pub skiplist_set_entry: f64,
}

/// `hash-max-listpack-value` while measuring `Alternatives::all_listpack`:
/// longer than any field an order can have.
const LONG_LISTPACK_VALUE: &str = "4096";

/// Measures `Alternatives` on the order hashes `keys`, whose last part is
/// the order's sequence number, of `county`.
pub async fn alternatives(
    probe: &Probe,
    channel: &Channel,
    county: &CountyCode,
    keys: &[String],
) -> Alternatives {
    let scratch = format!("{}bench-scratch", probe.prefix());
    let mut client = WorkOrderServiceClient::new(channel.clone());
    let mut sums = Alternatives::default();
    for key in keys {
        let Some(sequence) = key.rsplit(':').next().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let pairs = probe.hash_pairs(key).await;
        probe.write_hash(&scratch, &pairs).await;
        sums.as_stored += probe.memory_usage(&scratch).await as f64;

        let listpack_value = probe.config("hash-max-listpack-value").await;
        probe
            .set_config("hash-max-listpack-value", LONG_LISTPACK_VALUE)
            .await;
        probe.write_hash(&scratch, &pairs).await;
        sums.all_listpack += probe.memory_usage(&scratch).await as f64;
        probe
            .set_config("hash-max-listpack-value", &listpack_value)
            .await;

        let short: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .iter()
            .enumerate()
            .map(|(i, (_, value))| (short_name(i).into_bytes(), value.clone()))
            .collect();
        probe.write_hash(&scratch, &short).await;
        sums.short_names += probe.memory_usage(&scratch).await as f64;

        let without_empty: Vec<(Vec<u8>, Vec<u8>)> = short
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .collect();
        probe.write_hash(&scratch, &without_empty).await;
        sums.short_names_without_empty += probe.memory_usage(&scratch).await as f64;

        let id = OrderId::new(county.clone(), sequence);
        let encoded = get_order(&mut client, &id).await.encode_to_vec();
        probe.delete(&scratch).await;
        probe.write_string(&scratch, &encoded).await;
        sums.encoded_string += probe.memory_usage(&scratch).await as f64;
        sums.orders += 1;
    }
    let (listpack_set_entry, skiplist_set_entry) = sorted_set_entries(probe, &scratch).await;
    probe.delete(&scratch).await;

    let n = sums.orders.max(1) as f64;
    Alternatives {
        orders: sums.orders,
        as_stored: sums.as_stored / n,
        all_listpack: sums.all_listpack / n,
        short_names: sums.short_names / n,
        short_names_without_empty: sums.short_names_without_empty / n,
        encoded_string: sums.encoded_string / n,
        listpack_set_entry,
        skiplist_set_entry,
    }
}

/// Returns the bytes per member of a sorted set of sequence numbers in
/// the listpack encoding and in the skiplist encoding, from the growth of
/// `MEMORY USAGE` between two sizes of each.
async fn sorted_set_entries(probe: &Probe, scratch: &str) -> (f64, f64) {
    let listpack_limit: usize = probe
        .config("zset-max-listpack-entries")
        .await
        .parse()
        .unwrap_or(128);
    let members: Vec<String> = (0..4 * listpack_limit.max(2))
        .map(|i| (1_000_000 + i).to_string())
        .collect();
    let usage = |count: usize| {
        let members = &members[..count];
        async move {
            probe.write_sorted_set(scratch, members).await;
            probe.memory_usage(scratch).await as f64
        }
    };
    let (small, large) = (listpack_limit / 2, listpack_limit);
    let listpack = (usage(large).await - usage(small).await) / (large - small) as f64;
    let (small, large) = (2 * listpack_limit, 4 * listpack_limit);
    let skiplist = (usage(large).await - usage(small).await) / (large - small) as f64;
    (listpack, skiplist)
}

/// Returns a field name of one or two lowercase letters for position `i`.
fn short_name(i: usize) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let last = char::from(LETTERS[i % LETTERS.len()]);
    match i / LETTERS.len() {
        0 => last.to_string(),
        first => format!("{}{last}", char::from(LETTERS[(first - 1) % LETTERS.len()])),
    }
}

async fn get_order(client: &mut WorkOrderServiceClient<Channel>, id: &OrderId) -> pb::WorkOrder {
    client
        .get_work_order(with_bearer(
            pb::GetWorkOrderRequest {
                order_id: id.to_string(),
            },
            APP_KEY,
        ))
        .await
        .unwrap_or_else(|status| panic!("GetWorkOrder {id} failed: {status}"))
        .into_inner()
}

/// Prints the alternatives as a Markdown table, against `encoded`, the
/// mean encoded size of an order.
pub fn print_alternatives(alternatives: &Alternatives, encoded: f64) {
    println!(
        "| {} order hashes copied and stored as | mean MEMORY USAGE, bytes | vs encoded WorkOrder |",
        alternatives.orders
    );
    println!("|---|---:|---:|");
    for (name, bytes) in [
        ("the hash as RedisStore writes it", alternatives.as_stored),
        (
            "the same, all in listpack encoding",
            alternatives.all_listpack,
        ),
        ("one- or two-letter field names", alternatives.short_names),
        (
            "short names, empty fields left out",
            alternatives.short_names_without_empty,
        ),
        (
            "one string: the encoded WorkOrder",
            alternatives.encoded_string,
        ),
    ] {
        println!(
            "| {name} | {bytes:.0} | {:.2}× |",
            bytes / encoded.max(f64::MIN_POSITIVE)
        );
    }
    println!();
    println!(
        "- one member of a sorted set of sequence numbers: {:.1} bytes in a listpack, {:.1} \
         bytes in a skiplist",
        alternatives.listpack_set_entry, alternatives.skiplist_set_entry
    );
    println!();
}

/// Prints the memory of one step and the keys by kind.
pub fn print(memory: &Memory) {
    println!(
        "- used_memory grew by {} bytes for {} orders: {:.0} bytes per order; a \
         daiban.v1.WorkOrder of them encodes to {:.0} bytes on average, so Redis keeps {:.2}× \
         its encoded size",
        memory.grown,
        memory.loaded,
        memory.per_order(),
        memory.encoded,
        memory.ratio()
    );
    println!(
        "- an order's hash holds {:.1} fields on average: {:.0} bytes of field names and {:.0} \
         bytes of values",
        memory.hash_fields, memory.hash_name_bytes, memory.hash_value_bytes
    );
    println!();
    print_alternatives(&memory.alternatives, memory.encoded);
    println!(
        "| key kind | keys | MEMORY USAGE, bytes | bytes per stored order | encodings of measured keys |"
    );
    println!("|---|---:|---:|---:|---|");
    for kind in &memory.kinds {
        let encodings: Vec<String> = kind
            .encodings
            .iter()
            .map(|(encoding, count)| format!("{encoding} {count}"))
            .collect();
        println!(
            "| `{}` | {} | {} | {:.1} | {} (of {} measured) |",
            kind.pattern,
            kind.keys,
            kind.bytes,
            kind.bytes as f64 / memory.orders_stored.max(1) as f64,
            encodings.join(", "),
            kind.measured
        );
    }
    println!();
}
