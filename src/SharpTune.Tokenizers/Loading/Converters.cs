using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Tokenizers.Models;
using SharpTune.Tokenizers.Pipeline;

namespace SharpTune.Tokenizers.Loading;

/// <summary>Builds tokenizers from the other common tokenizer formats, from typed parts.</summary>
internal static class Converters
{
    /// <summary>BERT vocab.txt (one token per line; id = line number).</summary>
    public static Tokenizer FromBertVocab(string path, bool doLowerCase, SpecialTokens? specialTokens) => Named(path, () =>
    {
        var tokens = File.ReadAllLines(path).Select(l => l.TrimEnd('\r')).ToList();
        while (tokens.Count > 0 && tokens[^1].Length == 0)
            tokens.RemoveAt(tokens.Count - 1);
        var vocab = VocabHelpers.FromList(tokens);
        var special = specialTokens ?? new SpecialTokens { Unk = "[UNK]", Pad = "[PAD]", Cls = "[CLS]", Sep = "[SEP]", Mask = "[MASK]" };
        int Id(string? token, string role) => token is not null && vocab.TryGetValue(token, out var id) ? id
            : throw new InvalidDataException($"{path}: {role} token '{token}' is not in the vocabulary");
        var cls = special.Cls ?? "[CLS]";
        var sep = special.Sep ?? "[SEP]";
        var added = special.All.Distinct().Where(vocab.ContainsKey).Select(t => new AddedToken(t, vocab[t])).ToList();
        return new Tokenizer(new WordPieceModel(vocab, special.Unk ?? "[UNK]"), new BertNormalizer(true, true, null, doLowerCase),
            new BertPreTokenizer(), TemplateProcessor.Bert(cls, Id(cls, "cls"), sep, Id(sep, "sep")), new WordPieceDecoder("##", cleanup: true),
            added, special);
    });

    /// <summary>GPT-2 style vocab.json + merges.txt (byte-level BPE).</summary>
    public static Tokenizer FromGpt2Files(string vocabPath, string mergesPath, SpecialTokens? specialTokens) => Named(vocabPath, () =>
    {
        var json = JsonNode.Parse(File.ReadAllText(vocabPath)) as JsonObject
                   ?? throw new InvalidDataException($"{vocabPath} is not a JSON object of token → id");
        var vocab = new Dictionary<string, int>(json.Count, StringComparer.Ordinal);
        foreach (var (token, id) in json)
            vocab[token] = id is JsonValue v && v.TryGetValue<int>(out var i) && i >= 0 ? i
                : throw new InvalidDataException($"{vocabPath}: the id of {TokenizerJson.Show(JsonValue.Create(token))} must be a non-negative integer (got {TokenizerJson.Show(id)})");
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
        var added = (specialTokens?.All ?? []).Append("<|endoftext|>").Distinct().Where(vocab.ContainsKey)
            .Select(token => new AddedToken(token, vocab[token])).ToList();
        return new Tokenizer(new BpeModel(vocab, merges, new BpeOptions()), null, new ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true),
            new ByteLevelProcessor(trimOffsets: true, addPrefixSpace: false), new ByteLevelDecoder(), added, specialTokens);
    });

    /// <summary>SentencePiece tokenizer.model (protobuf): BPE (Llama) or Unigram, with byte fallback.</summary>
    public static Tokenizer FromSentencePiece(string path) => Named(path, () =>
    {
        var model = SentencePieceModel.Read(path);
        var pieces = model.Pieces;
        string? Name(int id) => id >= 0 && id < pieces.Count ? pieces[id].Piece : null;
        var special = new SpecialTokens { Unk = Name(model.UnkId), Bos = Name(model.BosId), Eos = Name(model.EosId), Pad = Name(model.PadId) };
        // User-defined pieces are matched whole in the text, like added tokens; control pieces never come from text.
        var added = pieces.Select((p, id) => (p, id)).Where(x => x.p.Type == SentencePieceType.UserDefined)
            .Select(x => new AddedToken(x.p.Piece, x.id, Special: false)).ToList();
        if (model.ModelType == 2)
        {
            var (normalizer, decoder) = SentencePieceBpePipeline(model.AddDummyPrefix);
            var merges = MergesFromScores(pieces.Select(p => (p.Piece, (double)p.Score, p.Type == SentencePieceType.Normal)).ToList());
            var bpe = new BpeModel(VocabHelpers.FromList(pieces.Select(p => p.Piece).ToList()), merges,
                new BpeOptions { UnkToken = Name(model.UnkId), ByteFallback = model.ByteFallback, FuseUnk = true });
            return new Tokenizer(bpe, normalizer, null, null, decoder, added, special);
        }
        if (model.ModelType == 1)
        {
            // The SentencePiece normalization rules (a precompiled char map) are approximated by NFKC when they are nmt_nfkc/nfkc.
            var normalizers = new List<INormalizer>();
            if (model.NormalizerName.Contains("nfkc", StringComparison.OrdinalIgnoreCase))
                normalizers.Add(new UnicodeNormalizer(NormalizationForm.FormKC));
            if (model.RemoveExtraWhitespaces)
                normalizers.Add(new ReplaceNormalizer(TokenizerPattern.FromRegex(" {2,}"), " "));
            return new Tokenizer(new UnigramModel(pieces.Select(p => (p.Piece, (double)p.Score)).ToList(), model.UnkId, model.ByteFallback),
                normalizers.Count == 0 ? null : new SequenceNormalizer(normalizers), new MetaspacePreTokenizer('\u2581', PrependScheme.Always, split: true),
                null, new MetaspaceDecoder('\u2581', PrependScheme.Always), added, special);
        }
        throw new InvalidDataException($"{path}: SentencePiece model type {model.ModelType} is not supported (only Unigram = 1 and BPE = 2)");
    });

    /// <summary>llama2.c tokenizer.bin: max token length, then (score, length, bytes) per token until the end of the file.</summary>
    public static Tokenizer FromLlama2c(string path) => Named(path, () =>
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
        var (normalizer, decoder) = SentencePieceBpePipeline(addDummyPrefix: true);
        var bpe = new BpeModel(VocabHelpers.FromList(pieces.Select(p => p.Piece).ToList()), MergesFromScores(pieces),
            new BpeOptions { UnkToken = "<unk>", ByteFallback = true, FuseUnk = true });
        return new Tokenizer(bpe, normalizer, null, null, decoder, [], new SpecialTokens { Unk = "<unk>", Bos = "<s>", Eos = "</s>" });
    });

    /// <summary>Llama-style SentencePiece BPE: ▁ for spaces with a dummy prefix, byte fallback on decode.</summary>
    private static (INormalizer Normalizer, IDecoder Decoder) SentencePieceBpePipeline(bool addDummyPrefix)
    {
        var replace = new ReplaceNormalizer(TokenizerPattern.FromLiteral(" "), "\u2581");
        INormalizer normalizer = addDummyPrefix ? new SequenceNormalizer([new PrependNormalizer("\u2581"), replace]) : new SequenceNormalizer([replace]);
        var decoders = new List<IDecoder>
        {
            new ReplaceDecoder(new ReplaceNormalizer(TokenizerPattern.FromLiteral("\u2581"), " ")), new ByteFallbackDecoder(), new FuseDecoder(),
        };
        if (addDummyPrefix)
            decoders.Add(new StripDecoder(' ', 1, 0));
        return (normalizer, new SequenceDecoder(decoders));
    }

    /// <summary>Errors of the parts (a vocabulary without its unknown token, a merge of missing tokens...) name the file.</summary>
    private static Tokenizer Named(string path, Func<Tokenizer> build)
    {
        try
        {
            return build();
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException && !e.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
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
