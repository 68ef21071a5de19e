"""Whisper with a static KV cache, written as gpt-fast writes Llama: the
self-attention caches and the cross-attention keys and values are
registered buffers of the module, a decoding step takes its position as a
tensor, and the step (embedding, decoder, logits, token suppression,
argmax) is one function with fixed shapes, so that
torch.compile(mode="reduce-overhead", fullgraph=True) can record it as one
CUDA graph and replay it per token. transformers' static cache path did not
(see whisper.py); this one loads the same weights (OpenAI's names, as
whisper.openai_weights makes them) and computes what transformers' Whisper
computes (pre-norm blocks, exact GELU, queries scaled before attention, no
key bias, logits from the tied token embedding), so that its greedy
transcript is transformers'.

Greedy decoding as transformers' Whisper.generate does it for an
English-only model without timestamps: the prompt <|startoftranscript|>
<|notimestamps|>, `suppress_tokens` suppressed at every step and
`begin_suppress_tokens` at the first generated one, until <|endoftext|> or
`max_new` tokens.
"""

SOT, NO_TIMESTAMPS, EOT = 50257, 50362, 50256
PROMPT = (SOT, NO_TIMESTAMPS)


def static_whisper(torch, weights, dims, dtype, device, suppress):
    """The model on `device` in `dtype`, its weights `weights` (OpenAI's
    names, numpy float32) and dims (ModelDimensions' keys); `suppress` is
    load_model's {suppress_tokens, begin_suppress_tokens}."""
    nn, F = torch.nn, torch.nn.functional
    text_ctx, audio_ctx = dims["n_text_ctx"], dims["n_audio_ctx"]

    class Attention(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.heads, self.head_dim = heads, width // heads
            self.query = nn.Linear(width, width)
            self.key = nn.Linear(width, width, bias=False)
            self.value = nn.Linear(width, width)
            self.out = nn.Linear(width, width)

        def split(self, x):
            return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

        def attend(self, x, keys, values, mask=None):
            # transformers scales the queries, then attends with scale 1.
            q = self.split(self.query(x) * self.head_dim ** -0.5)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=1.0)
            return self.out(y.transpose(1, 2).reshape(x.shape))

    class Block(nn.Module):
        def __init__(self, width, heads, cross):
            super().__init__()
            self.attn_ln, self.attn = nn.LayerNorm(width), Attention(width, heads)
            if cross:
                self.cross_attn_ln, self.cross_attn = nn.LayerNorm(width), Attention(width, heads)
            self.mlp_ln = nn.LayerNorm(width)
            self.mlp1, self.mlp2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

        def mlp(self, x):
            return x + self.mlp2(F.gelu(self.mlp1(self.mlp_ln(x))))

        def encoder_forward(self, x):
            y = self.attn_ln(x)
            x = x + self.attn.attend(y, self.attn.split(self.attn.key(y)), self.attn.split(self.attn.value(y)))
            return self.mlp(x)

        def setup_caches(self):
            head_dim = self.attn.head_dim
            for name, length in (("self_k", text_ctx), ("self_v", text_ctx), ("cross_k", audio_ctx),
                                 ("cross_v", audio_ctx)):
                shape = (1, self.attn.heads, length, head_dim)
                self.register_buffer(name, torch.zeros(shape, dtype=dtype, device=device), persistent=False)

        def fill_cross(self, audio):
            self.cross_k.copy_(self.cross_attn.split(self.cross_attn.key(audio)))
            self.cross_v.copy_(self.cross_attn.split(self.cross_attn.value(audio)))

        def decoder_step(self, x, pos, mask):
            y = self.attn_ln(x)
            self.self_k[:, :, pos] = self.attn.split(self.attn.key(y))
            self.self_v[:, :, pos] = self.attn.split(self.attn.value(y))
            x = x + self.attn.attend(y, self.self_k, self.self_v, mask)
            x = x + self.cross_attn.attend(self.cross_attn_ln(x), self.cross_k, self.cross_v)
            return self.mlp(x)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            width = dims["n_audio_state"]
            self.conv1 = nn.Conv1d(dims["n_mels"], width, 3, padding=1)
            self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
            self.register_buffer("positional_embedding", torch.zeros(audio_ctx, width))
            self.blocks = nn.ModuleList(Block(width, dims["n_audio_head"], False)
                                        for _ in range(dims["n_audio_layer"]))
            self.ln_post = nn.LayerNorm(width)

        def forward(self, mel):
            x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
            x = x + self.positional_embedding
            for block in self.blocks:
                x = block.encoder_forward(x)
            return self.ln_post(x)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            width = dims["n_text_state"]
            self.token_embedding = nn.Parameter(torch.zeros(dims["n_vocab"], width))
            self.positional_embedding = nn.Parameter(torch.zeros(text_ctx, width))
            self.blocks = nn.ModuleList(Block(width, dims["n_text_head"], True)
                                        for _ in range(dims["n_text_layer"]))
            self.ln = nn.LayerNorm(width)

    class StaticWhisper(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = Encoder(), Decoder()

        def setup_caches(self):
            for block in self.decoder.blocks:
                block.setup_caches()
            self.register_buffer("positions", torch.arange(text_ctx, device=device), persistent=False)
            bias = torch.zeros(dims["n_vocab"], device=device)
            bias[suppress["suppress_tokens"]] = float("-inf")
            self.register_buffer("suppress", bias, persistent=False)
            first = bias.clone()
            first[suppress["begin_suppress_tokens"]] = float("-inf")
            self.register_buffer("first_suppress", first, persistent=False)

        def encode(self, mel):
            """The encoder, and each decoder block's cross-attention keys
            and values of its output, into their buffers."""
            audio = self.encoder(mel)
            for block in self.decoder.blocks:
                block.fill_cross(audio)

        def step(self, token, pos):
            """The next token after `token` (1x1) at position `pos` (1,),
            greedy over the float32 logits with the suppressed tokens at
            -inf (and the first generated token's, selected by position
            rather than by a branch, so that the step is one graph)."""
            d = self.decoder
            x = d.token_embedding[token] + d.positional_embedding[pos]
            mask = (self.positions <= pos).view(1, 1, 1, -1)
            for block in d.blocks:
                x = block.decoder_step(x, pos, mask)
            logits = (d.ln(x) @ d.token_embedding.t()).float()[:, -1]
            bias = torch.where(pos == len(PROMPT) - 1, self.first_suppress, self.suppress)
            return torch.argmax(logits + bias, dim=-1, keepdim=True)

    model = StaticWhisper()
    state = {k: torch.from_numpy(v) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"converted weights vs the static-cache Whisper: missing {missing}, unused {unexpected}")
    model = model.to(device=device, dtype=dtype).eval()
    model.setup_caches()
    return model


def greedy(torch, model, mel, max_new, encode=None, step=None):
    """Token ids after the prompt, without <|endoftext|>; `encode` and
    `step` are the model's own or their compiled forms. Returns the ids and
    the number of step calls."""
    encode, step = encode or model.encode, step or model.step
    device = model.positions.device
    encode(mel)
    pos = torch.zeros(1, dtype=torch.long, device=device)
    # The prompt one token at a time: the step's one shape (a causal
    # decoder's last logits are the same as after a pass over the prompt).
    for prompt_token in PROMPT:
        token = step(torch.tensor([[prompt_token]], device=device), pos)
        pos += 1
    ids, calls = [], len(PROMPT)
    while True:
        # A CUDA graph's output is overwritten by its next replay.
        token = token.clone()
        value = int(token.item())
        if value == EOT:
            break
        ids.append(value)
        if len(ids) == max_new:
            break
        token = step(token, pos)
        calls += 1
        pos += 1
    return ids, calls
