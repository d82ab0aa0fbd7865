//! The parsers of the SMS providers' delivery reports and replies on any
//! bytes: none panics, and none returns more entries than a batch may
//! hold.

#![no_main]

use daiban_sms::inbound::{
    MAX_BATCH, aliyun_replies, aliyun_reports, tencent_replies, tencent_reports,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(reports) = aliyun_reports(body) {
        assert!(reports.len() <= MAX_BATCH);
    }
    if let Ok(replies) = aliyun_replies(body) {
        assert!(replies.len() <= MAX_BATCH);
    }
    if let Ok(reports) = tencent_reports(body) {
        assert!(reports.len() <= MAX_BATCH);
    }
    if let Ok(replies) = tencent_replies(body) {
        assert!(replies.len() <= MAX_BATCH);
    }
});
