using System.Text;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenizers.Loading;

/// <summary>Turns the other common tokenizer formats into the equivalent tokenizer.json, then loads that.</summary>
internal static class Converters
{
    /// <summary>BERT vocab.txt (one token per line; id = line number).</summary>
    public static Tokenizer FromBertVocab(string path, bool doLowerCase, SpecialTokens? specialTokens)
    {
        var tokens = File.ReadAllLines(path).Select(l => l.TrimEnd('\r')).ToList();
        while (tokens.Count > 0 && tokens[^1].Length == 0)
            tokens.RemoveAt(tokens.Count - 1);
        var vocab = Definitions.Vocab(tokens);
        var special = specialTokens ?? new SpecialTokens { Unk = "[UNK]", Pad = "[PAD]", Cls = "[CLS]", Sep = "[SEP]", Mask = "[MASK]" };
        int Id(string? token, string role) => token is not null && vocab[token] is { } id ? id.GetValue<int>()
            : throw new InvalidDataException($"{path}: {role} token '{token}' is not in the vocabulary");
        var cls = special.Cls ?? "[CLS]";
        var sep = special.Sep ?? "[SEP]";
        var added = special.All.Distinct().Where(t => vocab.ContainsKey(t)).Select(t => new AddedToken(t, Id(t, "special")));
        var json = Definitions.Tokenizer(Definitions.BertNormalizer(doLowerCase), Definitions.Typed("BertPreTokenizer"),
            Definitions.WordPieceModel(vocab, special.Unk ?? "[UNK]"), Definitions.BertTemplate(cls, Id(cls, "cls"), sep, Id(sep, "sep")),
            Definitions.Typed("WordPiece", ("prefix", "##"), ("cleanup", true)), added);
        return TokenizerJson.Parse(json, path, special);
    }

    /// <summary>GPT-2 style vocab.json + merges.txt (byte-level BPE).</summary>
    public static Tokenizer FromGpt2Files(string vocabPath, string mergesPath, SpecialTokens? specialTokens)
    {
        var vocab = JsonNode.Parse(File.ReadAllText(vocabPath)) as JsonObject
                    ?? throw new InvalidDataException($"{vocabPath} is not a JSON object of token → id");
        var merges = new List<(string, string)>();
        foreach (var line in File.ReadLines(mergesPath))
        {
            if (line.StartsWith("#version", StringComparison.Ordinal) || line.Trim().Length == 0)
                continue;
            var space = line.IndexOf(' ', 1);
            if (space < 0)
                throw new InvalidDataException($"{mergesPath}: bad merge line '{line}'");
            merges.Add((line[..space], line[(space + 1)..]));
        }
        var added = new List<AddedToken>();
        foreach (var token in (specialTokens?.All ?? []).Append("<|endoftext|>").Distinct())
            if (vocab[token] is { } id)
                added.Add(new AddedToken(token, id.GetValue<int>()));
        var json = Definitions.Tokenizer(null, Definitions.ByteLevel(false, true),
            Definitions.BpeModel((JsonObject)vocab.DeepClone(), Definitions.Merges(merges)), Definitions.ByteLevel(false, true),
            Definitions.ByteLevel(false, true), added);
        return TokenizerJson.Parse(json, vocabPath, specialTokens);
    }

    /// <summary>SentencePiece tokenizer.model (protobuf): BPE (Llama) or Unigram, with byte fallback.</summary>
    public static Tokenizer FromSentencePiece(string path)
    {
        var model = SentencePieceModel.Read(path);
        var pieces = model.Pieces;
        string? Name(int id) => id >= 0 && id < pieces.Count ? pieces[id].Piece : null;
        var special = new SpecialTokens { Unk = Name(model.UnkId), Bos = Name(model.BosId), Eos = Name(model.EosId), Pad = Name(model.PadId) };
        // User-defined pieces are matched whole in the text, like added tokens; control pieces never come from text.
        var added = pieces.Select((p, id) => (p, id)).Where(x => x.p.Type == SentencePieceType.UserDefined)
            .Select(x => new AddedToken(x.p.Piece, x.id, Special: false));
        JsonObject json;
        if (model.ModelType == 2)
        {
            var (normalizer, decoder) = Definitions.SentencePieceBpePipeline(model.AddDummyPrefix);
            var vocab = Definitions.Vocab(pieces.Select(p => p.Piece).ToList());
            var merges = MergesFromScores(pieces.Select(p => (p.Piece, (double)p.Score, p.Type == SentencePieceType.Normal)).ToList());
            json = Definitions.Tokenizer(normalizer, null,
                Definitions.BpeModel(vocab, Definitions.Merges(merges), Name(model.UnkId), model.ByteFallback, fuseUnk: true),
                null, decoder, added);
        }
        else if (model.ModelType == 1)
        {
            // The SentencePiece normalization rules (a precompiled char map) are approximated by NFKC when they are nmt_nfkc/nfkc.
            var normalizers = new List<JsonNode>();
            if (model.NormalizerName.Contains("nfkc", StringComparison.OrdinalIgnoreCase))
                normalizers.Add(Definitions.Typed("NFKC"));
            if (model.RemoveExtraWhitespaces)
                normalizers.Add(Definitions.Typed("Replace", ("pattern", new JsonObject { ["Regex"] = " {2,}" }), ("content", " ")));
            json = Definitions.Tokenizer(normalizers.Count == 0 ? null : Definitions.Sequence("Sequence", "normalizers", normalizers.ToArray()),
                Definitions.Metaspace(),
                Definitions.UnigramModel(pieces.Select(p => (p.Piece, (double)p.Score)), model.UnkId, model.ByteFallback),
                null, Definitions.Typed("Metaspace", ("replacement", "\u2581"), ("prepend_scheme", "always"), ("split", true)), added);
        }
        else
            throw new InvalidDataException($"{path}: SentencePiece model type {model.ModelType} is not supported (only Unigram = 1 and BPE = 2)");
        return TokenizerJson.Parse(json, path, special);
    }

    /// <summary>llama2.c tokenizer.bin: max token length, then (score, length, bytes) per token until the end of the file.</summary>
    public static Tokenizer FromLlama2c(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        reader.ReadInt32();
        var pieces = new List<(string Piece, double Score, bool Mergeable)>();
        while (reader.BaseStream.Position < reader.BaseStream.Length)
        {
            var score = reader.ReadSingle();
            var length = reader.ReadInt32();
            if (length < 0 || length > reader.BaseStream.Length - reader.BaseStream.Position)
                throw new InvalidDataException($"{path}: token {pieces.Count} has an invalid length {length}");
            var text = System.Text.Encoding.UTF8.GetString(reader.ReadBytes(length));
            // llama2.c's export wrote ▁ as a space and wrapped BOS/EOS in newlines.
            var piece = text switch { "\n<s>\n" => "<s>", "\n</s>\n" => "</s>", _ => text.Replace(' ', '\u2581') };
            var mergeable = pieces.Count >= 3 && !(piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal));
            pieces.Add((piece, score, mergeable));
        }
        if (pieces.Count < 3)
            throw new InvalidDataException($"{path}: too few tokens ({pieces.Count}) for a llama2.c tokenizer");
        var (normalizer, decoder) = Definitions.SentencePieceBpePipeline(addDummyPrefix: true);
        var json = Definitions.Tokenizer(normalizer, null,
            Definitions.BpeModel(Definitions.Vocab(pieces.Select(p => p.Piece).ToList()), Definitions.Merges(MergesFromScores(pieces)),
                "<unk>", byteFallback: true, fuseUnk: true), null, decoder, []);
        return TokenizerJson.Parse(json, path, new SpecialTokens { Unk = "<unk>", Bos = "<s>", Eos = "</s>" });
    }

    /// <summary>
    /// Score-ordered BPE (SentencePiece, llama2.c) as ranked merges: every split of a mergeable piece into two pieces of
    /// the vocabulary is a merge, ranked by the merged piece's score (higher first), as Hugging Face's converter does.
    /// </summary>
    internal static List<(string, string)> MergesFromScores(IReadOnlyList<(string Piece, double Score, bool Mergeable)> pieces)
    {
        var ids = new Dictionary<string, int>();
        for (var i = 0; i < pieces.Count; i++)
            ids.TryAdd(pieces[i].Piece, i);
        var merges = new List<(string Left, string Right, double Score, int Id, int LeftId, int RightId)>();
        for (var id = 0; id < pieces.Count; id++)
        {
            var (piece, score, mergeable) = pieces[id];
            if (!mergeable)
                continue;
            for (var cut = 1; cut < piece.Length; cut++)
            {
                if (char.IsLowSurrogate(piece[cut]))
                    continue;
                if (ids.TryGetValue(piece[..cut], out var left) && ids.TryGetValue(piece[cut..], out var right))
                    merges.Add((piece[..cut], piece[cut..], score, id, left, right));
            }
        }
        return merges.OrderByDescending(m => m.Score).ThenBy(m => m.Id).ThenBy(m => m.LeftId).ThenBy(m => m.RightId)
            .Select(m => (m.Left, m.Right)).ToList();
    }
}
