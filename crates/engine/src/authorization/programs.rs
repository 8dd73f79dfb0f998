//! Programs as the engine knows them. There are few, every message needs one, and they change
//! rarely, so they live in memory. A cached program is used only after its version stamp
//! (`updated_at`, which every program change moves) was read in the batch's own transaction,
//! together with the card: a change committed through any process before the batch read it is
//! always honoured (a suspended program declines from then on), and a stale entry costs one
//! reload inside that transaction. What a BIN belongs to and how a program is funded never change,
//! so that map needs no stamp.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cardplane_domain::ids::ProgramId;
use cardplane_domain::network::ProgramAccounts;
use cardplane_domain::pan::Pan;
use cardplane_domain::program::{FundingModel, Program};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::StoreError;
use cardplane_store::network_batch::{NetworkBatch, NetworkBatchStore};

/// A program with the accounts its postings touch.
#[derive(Debug)]
pub struct KnownProgram {
    pub program: Program,
    pub accounts: ProgramAccounts,
}

#[derive(Default)]
pub(crate) struct Programs {
    by_id: RwLock<HashMap<ProgramId, Arc<KnownProgram>>>,
    by_bin: RwLock<HashMap<(Environment, String), FundingModel>>,
}

/// The BIN prefixes a PAN could belong to (BINs are 6 or 8 digits and never overlap).
fn bins(pan: &Pan) -> [&str; 2] {
    let digits = pan.expose();
    [&digits[..6], &digits[..8]]
}

impl Programs {
    /// The program as of this batch: the cached one if its stamp is `version`, else read again.
    pub async fn current(
        &self,
        batch: &mut NetworkBatch,
        id: &ProgramId,
        version: Timestamp,
    ) -> Result<Arc<KnownProgram>, StoreError> {
        let cached = self.by_id.read().expect("program cache lock").get(id).cloned();
        if let Some(p) = cached.filter(|p| p.program.updated_at == version) {
            return Ok(p);
        }
        let (program, accounts) = batch.program(id).await?;
        let known = Arc::new(KnownProgram { program, accounts });
        self.by_id
            .write()
            .expect("program cache lock")
            .insert(id.clone(), known.clone());
        Ok(known)
    }

    /// How the program a PAN belongs to is funded, if any program has its BIN.
    pub async fn funding_model(
        &self,
        store: &dyn NetworkBatchStore,
        environment: Environment,
        pan: &Pan,
    ) -> Result<Option<FundingModel>, StoreError> {
        let candidates = bins(pan);
        {
            let map = self.by_bin.read().expect("program cache lock");
            if let Some(model) = candidates.iter().find_map(|b| map.get(&(environment, (*b).to_owned()))) {
                return Ok(Some(*model));
            }
        }
        // Unknown BINs are not remembered: a program created later must be found.
        let found = store.programs_by_bin(environment, &candidates).await?;
        let mut map = self.by_bin.write().expect("program cache lock");
        for p in &found {
            map.insert((p.environment, p.bin.clone()), p.funding_model);
        }
        Ok(found.first().map(|p| p.funding_model))
    }
}
