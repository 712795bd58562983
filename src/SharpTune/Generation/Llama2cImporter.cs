using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO;
using static TorchSharp.torch;

namespace SharpTune.Generation;

/// <summary>The 7 int32 values that open a llama2.c checkpoint.</summary>
public sealed record Llama2cConfig(int Dim, int HiddenDim, int Layers, int Heads, int KeyValueHeads, int VocabSize, int SequenceLength, bool SharedClassifier)
{
    public int HeadDim => Dim / Heads;
}

/// <summary>
/// Converts a llama2.c checkpoint (Karpathy's legacy <c>.bin</c> export: 7 int32 config values, then fp32 weights)
/// and its <c>tokenizer.bin</c> into the Hugging Face Llama layout: config.json, generation_config.json,
/// model.safetensors (q/k rows permuted from llama2.c's interleaved rotary pairs to Hugging Face's half-split
/// convention), tokenizer.json (byte-fallback BPE whose merges follow the SentencePiece scores) and tokenizer_config.json.
/// </summary>
public static class Llama2cImporter
{
    public static Llama2cConfig ReadConfig(BinaryReader reader, string path)
    {
        var values = new int[7];
        try
        {
            for (var i = 0; i < values.Length; i++)
                values[i] = reader.ReadInt32();
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"{path}: too short for a llama2.c checkpoint header");
        }
        if (values[0] == 0x616b3432)
            throw new InvalidDataException($"{path}: llama2.c 'ak42' export (version {values[1]}) is not supported; export with llama2.c's legacy format (export.py --version 0)");
        var config = new Llama2cConfig(values[0], values[1], values[2], values[3], values[4], Math.Abs(values[5]), values[6], values[5] > 0);
        if (config.Dim <= 0 || config.HiddenDim <= 0 || config.Layers <= 0 || config.Heads <= 0 || config.KeyValueHeads <= 0
            || config.VocabSize == 0 || config.SequenceLength <= 0 || config.Dim % config.Heads != 0
            || config.Heads % config.KeyValueHeads != 0 || config.HeadDim % 2 != 0)
            throw new InvalidDataException($"{path}: not a llama2.c checkpoint (header {string.Join(", ", values)})");
        CheckSize(config, reader.BaseStream.Length, path);
        return config;
    }

    /// <summary>The header fixes the file's size exactly; checking it before reading any weight turns an absurd or
    /// truncated header into one clear message instead of a huge allocation or an overflow.</summary>
    private static void CheckSize(Llama2cConfig c, long fileLength, string path)
    {
        const long headerBytes = 7 * sizeof(int);
        long expected;
        try
        {
            checked
            {
                long dim = c.Dim, hidden = c.HiddenDim, kvDim = (long)c.KeyValueHeads * c.HeadDim;
                var perLayer = dim + dim * dim + 2 * kvDim * dim + dim * dim + dim + 3 * hidden * dim;
                var floats = c.VocabSize * dim + c.Layers * perLayer + dim + c.SequenceLength * (long)c.HeadDim
                             + (c.SharedClassifier ? 0 : c.VocabSize * dim);
                expected = headerBytes + floats * sizeof(float);
            }
        }
        catch (OverflowException)
        {
            throw new InvalidDataException($"{path}: llama2.c header sizes (dim {c.Dim}, hidden_dim {c.HiddenDim}, {c.Layers} layers, vocab {c.VocabSize}, seq_len {c.SequenceLength}) are absurd: the weights would exceed 2^63 bytes");
        }
        // Both matrices are part of the weights counted above, so their byte sizes cannot overflow either.
        if (expected == fileLength && Math.Max((long)c.VocabSize * c.Dim, (long)c.HiddenDim * c.Dim) * sizeof(float) <= Array.MaxLength)
            return;
        if (expected != fileLength)
            throw new InvalidDataException($"{path}: llama2.c header (dim {c.Dim}, hidden_dim {c.HiddenDim}, {c.Layers} layers, {c.Heads} heads, vocab {c.VocabSize}, seq_len {c.SequenceLength}) " +
                                           $"implies a file of {expected:N0} bytes; the file has {fileLength:N0} (truncated, or not a llama2.c legacy checkpoint)");
        throw new InvalidDataException($"{path}: a llama2.c weight matrix of {Math.Max((long)c.VocabSize, c.HiddenDim) * c.Dim:N0} values is too large for this importer");
    }

    /// <summary>Writes the Hugging Face layout of <paramref name="checkpointPath"/> + <paramref name="tokenizerPath"/> into <paramref name="outputDirectory"/>.</summary>
    public static Llama2cConfig Convert(string checkpointPath, string tokenizerPath, string outputDirectory)
    {
        if (!File.Exists(checkpointPath))
            throw new FileNotFoundException($"llama2.c checkpoint not found: {checkpointPath}", checkpointPath);
        var vocabulary = Llama2cVocabulary.Load(tokenizerPath);
        using var scope = NewDisposeScope();
        Llama2cConfig config;
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (var reader = new BinaryReader(File.OpenRead(checkpointPath)))
        {
            config = ReadConfig(reader, checkpointPath);
            if (config.VocabSize != vocabulary.Count)
                throw new InvalidDataException($"{tokenizerPath}: {vocabulary.Count} tokens but {checkpointPath} has vocab_size {config.VocabSize}");
            ReadWeights(reader, checkpointPath, config, tensors);
        }
        Directory.CreateDirectory(outputDirectory);
        SafeTensorsWriter.Save(Path.Combine(outputDirectory, Checkpoint.SingleFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        WriteJson(Path.Combine(outputDirectory, "config.json"), ModelConfig(config));
        WriteJson(Path.Combine(outputDirectory, "generation_config.json"), new JsonObject
        {
            ["bos_token_id"] = Llama2cVocabulary.BosId,
            ["eos_token_id"] = Llama2cVocabulary.EosId,
        });
        WriteJson(Path.Combine(outputDirectory, "tokenizer.json"), TokenizerJson(vocabulary));
        WriteJson(Path.Combine(outputDirectory, "tokenizer_config.json"), new JsonObject
        {
            ["bos_token"] = vocabulary.SentencePiece(Llama2cVocabulary.BosId),
            ["eos_token"] = vocabulary.SentencePiece(Llama2cVocabulary.EosId),
            ["unk_token"] = vocabulary.SentencePiece(Llama2cVocabulary.UnknownId),
            ["add_bos_token"] = true,
            ["tokenizer_class"] = "LlamaTokenizerFast",
        });
        return config;
    }

    // llama2.c's legacy export writes each kind of weight for all layers together, in this order.
    private static void ReadWeights(BinaryReader reader, string path, Llama2cConfig c, List<KeyValuePair<string, Tensor>> tensors)
    {
        var kvDim = c.KeyValueHeads * c.HeadDim;
        Tensor Read(params long[] shape)
        {
            var count = checked((int)shape.Aggregate(1L, (a, b) => a * b));
            var bytes = reader.ReadBytes(count * sizeof(float));
            if (bytes.Length != count * sizeof(float))
                throw new InvalidDataException($"{path}: ends early (truncated checkpoint, or the header does not match the weights)");
            var values = new float[count];
            Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
            return tensor(values, shape);
        }
        void PerLayer(string name, Func<Tensor, Tensor>? transform, params long[] shape)
        {
            for (var layer = 0; layer < c.Layers; layer++)
            {
                var weight = Read(shape);
                tensors.Add(new($"model.layers.{layer}.{name}", transform is null ? weight : transform(weight)));
            }
        }

        tensors.Add(new("model.embed_tokens.weight", Read(c.VocabSize, c.Dim)));
        PerLayer("input_layernorm.weight", null, c.Dim);
        PerLayer("self_attn.q_proj.weight", w => PermuteRotary(w, c.Heads), c.Dim, c.Dim);
        PerLayer("self_attn.k_proj.weight", w => PermuteRotary(w, c.KeyValueHeads), kvDim, c.Dim);
        PerLayer("self_attn.v_proj.weight", null, kvDim, c.Dim);
        PerLayer("self_attn.o_proj.weight", null, c.Dim, c.Dim);
        PerLayer("post_attention_layernorm.weight", null, c.Dim);
        PerLayer("mlp.gate_proj.weight", null, c.HiddenDim, c.Dim);
        PerLayer("mlp.down_proj.weight", null, c.Dim, c.HiddenDim);
        PerLayer("mlp.up_proj.weight", null, c.HiddenDim, c.Dim);
        tensors.Add(new("model.norm.weight", Read(c.Dim)));
        // Precomputed rotary cos/sin tables (seq_len × head_dim/2 each): transformers recomputes them.
        Read(c.SequenceLength, c.HeadDim / 2).Dispose();
        Read(c.SequenceLength, c.HeadDim / 2).Dispose();
        if (!c.SharedClassifier)
            tensors.Add(new("lm_head.weight", Read(c.VocabSize, c.Dim)));
        if (reader.BaseStream.Position != reader.BaseStream.Length)
            throw new InvalidDataException($"{path}: {reader.BaseStream.Length - reader.BaseStream.Position} bytes left after the weights (the header does not match the file)");
    }

    /// <summary>llama2.c rotates interleaved pairs (0,1),(2,3)… of each head; Hugging Face rotates (i, i + d/2).
    /// Reordering each head's output rows moves pair element 2i to row i and 2i+1 to row d/2 + i.</summary>
    public static Tensor PermuteRotary(Tensor weight, int heads)
    {
        var rows = weight.shape[0];
        var columns = weight.shape[1];
        return weight.view(heads, rows / heads / 2, 2, columns).transpose(1, 2).reshape(rows, columns);
    }

    private static JsonObject ModelConfig(Llama2cConfig c) => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["attention_bias"] = false,
        ["attention_dropout"] = 0.0,
        ["bos_token_id"] = Llama2cVocabulary.BosId,
        ["dtype"] = "float32",
        ["eos_token_id"] = Llama2cVocabulary.EosId,
        ["head_dim"] = c.HeadDim,
        ["hidden_act"] = "silu",
        ["hidden_size"] = c.Dim,
        ["initializer_range"] = 0.02,
        ["intermediate_size"] = c.HiddenDim,
        ["max_position_embeddings"] = c.SequenceLength,
        ["mlp_bias"] = false,
        ["model_type"] = "llama",
        ["num_attention_heads"] = c.Heads,
        ["num_hidden_layers"] = c.Layers,
        ["num_key_value_heads"] = c.KeyValueHeads,
        ["pad_token_id"] = null,
        ["pretraining_tp"] = 1,
        ["rms_norm_eps"] = 1e-05,
        ["rope_parameters"] = new JsonObject { ["rope_theta"] = 10000.0, ["rope_type"] = "default" },
        ["tie_word_embeddings"] = c.SharedClassifier,
        ["use_cache"] = true,
        ["vocab_size"] = c.VocabSize,
    };

    /// <summary>The tokenizer.json transformers' Llama converter builds from a SentencePiece BPE model: pieces in id
    /// order; for every piece, each split into two known pieces is a merge (ordered by the pieces' ids), and the
    /// merges are ranked by the piece's score, highest first (ties keep id order).</summary>
    private static JsonObject TokenizerJson(Llama2cVocabulary vocabulary)
    {
        var pieces = Enumerable.Range(0, vocabulary.Count).Select(vocabulary.SentencePiece).ToList();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < pieces.Count; i++)
            if (!ids.TryAdd(pieces[i], i))
                throw new InvalidDataException($"llama2.c tokenizer: piece '{pieces[i]}' appears twice (ids {ids[pieces[i]]} and {i})");
        var merges = pieces
            .Select((piece, id) => (Score: vocabulary.Scores[id], Pairs: Enumerable.Range(1, Math.Max(0, piece.Length - 1))
                .Where(split => !char.IsHighSurrogate(piece[split - 1])) // split between code points, as Python does
                .Select(split => (Left: piece[..split], Right: piece[split..]))
                .Where(p => ids.ContainsKey(p.Left) && ids.ContainsKey(p.Right))
                .OrderBy(p => ids[p.Left]).ThenBy(p => ids[p.Right])))
            .SelectMany(entry => entry.Pairs.Select(pair => (entry.Score, pair.Left, pair.Right)))
            .OrderByDescending(m => m.Score)
            .Select(m => (JsonNode)new JsonArray(m.Left, m.Right))
            .ToArray();
        var vocab = new JsonObject();
        for (var i = 0; i < pieces.Count; i++)
            vocab[pieces[i]] = i;
        var added = new JsonArray();
        foreach (var id in new[] { Llama2cVocabulary.UnknownId, Llama2cVocabulary.BosId, Llama2cVocabulary.EosId })
            added.Add(new JsonObject
            {
                ["id"] = id, ["content"] = pieces[id], ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["normalizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" },
                    new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁" }),
            },
            ["pre_tokenizer"] = null,
            ["post_processor"] = null,
            ["decoder"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["decoders"] = new JsonArray(
                    new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " " },
                    new JsonObject { ["type"] = "ByteFallback" },
                    new JsonObject { ["type"] = "Fuse" },
                    new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }),
            },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = pieces[Llama2cVocabulary.UnknownId],
                ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null,
                ["fuse_unk"] = true,
                ["byte_fallback"] = true,
                ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(merges),
            },
        };
    }

    private static void WriteJson(string path, JsonObject json) =>
        AtomicFile.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions
        {
            WriteIndented = true,
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }) + "\n");
}
