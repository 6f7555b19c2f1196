//! The audit trail: newest first, paged by event id.
use sea_orm::{
    ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
};

use super::{Core, Ctx, accounts::page};
use crate::{
    db::entities::audit_event,
    error::{Error, Result},
};

impl Core {
    pub async fn list_events(
        &self,
        ctx: &Ctx,
        slug: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<audit_event::Model>, String)> {
        ctx.require_admin()?;
        let account = self.account_by_slug(&self.db.read, slug).await?;
        let limit = if page_size <= 0 {
            50
        } else {
            page_size.min(500)
        } as u64;
        let mut query = audit_event::Entity::find()
            .filter(audit_event::Column::AccountId.eq(account.id))
            .order_by_desc(audit_event::Column::Id);
        if !page_token.is_empty() {
            let before: i64 = page_token
                .parse()
                .map_err(|_| Error::invalid("page_token", "is not a token this service issued"))?;
            query = query.filter(audit_event::Column::Id.lt(before));
        }
        let events = query.limit(limit + 1).all(&self.db.read).await?;
        Ok(page(events, limit as usize, |e| e.id.to_string()))
    }
}
