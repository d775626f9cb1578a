// SPDX-License-Identifier: GPL-2.0

#include <net/genetlink.h>
#include <net/netlink.h>

__rust_helper void *rust_helper_genlmsg_put_reply(struct sk_buff *skb,
						  struct genl_info *info,
						  const struct genl_family *family,
						  int flags, u8 cmd)
{
	return genlmsg_put_reply(skb, info, family, flags, cmd);
}

__rust_helper int rust_helper_genlmsg_reply(struct sk_buff *skb,
					    struct genl_info *info)
{
	return genlmsg_reply(skb, info);
}

__rust_helper struct nlattr *rust_helper_nla_nest_start(struct sk_buff *skb,
							int attrtype)
{
	return nla_nest_start(skb, attrtype);
}

__rust_helper int rust_helper_nla_nest_end(struct sk_buff *skb,
					   struct nlattr *start)
{
	return nla_nest_end(skb, start);
}

__rust_helper void rust_helper_nla_nest_cancel(struct sk_buff *skb,
					       struct nlattr *start)
{
	nla_nest_cancel(skb, start);
}
