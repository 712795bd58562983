using System.Text;

namespace SharpTune.Generation;

/// <summary>
/// A llama2.c tokenizer file (<c>tokenizer.bin</c>, <c>tok512.bin</c>): <c>int32 max_token_length</c>, then per token
/// <c>float32 score, int32 byte_length, UTF-8 bytes</c>. Pieces use a plain space where SentencePiece has '▁';
/// BOS and EOS are stored as "\n&lt;s&gt;\n" and "\n&lt;/s&gt;\n", which llama2.c prints verbatim.
/// </summary>
public sealed class Llama2cVocabulary
{
    private Llama2cVocabulary(IReadOnlyList<string> pieces, IReadOnlyList<float> scores)
    {
        Pieces = pieces;
        Scores = scores;
    }

    /// <summary>Token texts exactly as stored (llama2.c's spelling).</summary>
    public IReadOnlyList<string> Pieces { get; }

    /// <summary>SentencePiece scores: higher merges first.</summary>
    public IReadOnlyList<float> Scores { get; }

    public const int UnknownId = 0;
    public const int BosId = 1;
    public const int EosId = 2;

    public static Llama2cVocabulary Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"llama2.c tokenizer not found: {path}", path);
        using var reader = new BinaryReader(File.OpenRead(path));
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        var pieces = new List<string>();
        var scores = new List<float>();
        try
        {
            var maxLength = reader.ReadInt32();
            if (maxLength <= 0 || maxLength > 1024)
                throw new InvalidDataException($"{path}: not a llama2.c tokenizer (max_token_length {maxLength})");
            while (reader.BaseStream.Position < reader.BaseStream.Length)
            {
                var score = reader.ReadSingle();
                var length = reader.ReadInt32();
                if (length < 0 || length > maxLength)
                    throw new InvalidDataException($"{path}: token {pieces.Count} has length {length} (max_token_length {maxLength})");
                pieces.Add(strict.GetString(reader.ReadBytes(length)));
                scores.Add(score);
            }
        }
        catch (Exception e) when (e is EndOfStreamException or DecoderFallbackException)
        {
            throw new InvalidDataException($"{path}: truncated or corrupt llama2.c tokenizer at token {pieces.Count} ({e.Message})");
        }
        if (pieces.Count <= EosId)
            throw new InvalidDataException($"{path}: only {pieces.Count} tokens, llama2.c tokenizers start with <unk>, <s>, </s>");
        return new Llama2cVocabulary(pieces, scores);
    }

    public int Count => Pieces.Count;

    /// <summary>The SentencePiece spelling of a piece: '▁' for spaces, BOS/EOS without llama2.c's newlines.</summary>
    public string SentencePiece(int id) => id is BosId or EosId ? Pieces[id].Trim('\n') : Pieces[id].Replace(' ', '▁');

    /// <summary>Decodes as llama2.c's <c>decode</c> does: pieces verbatim, <c>&lt;0xXX&gt;</c> as raw bytes,
    /// and the space that starts the first piece after BOS dropped.</summary>
    public string Decode(IEnumerable<long> ids)
    {
        var bytes = new List<byte>();
        var previous = -1L;
        foreach (var id in ids)
        {
            if (id < 0 || id >= Count)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id outside the vocabulary of {Count}");
            var piece = Pieces[(int)id];
            if (previous == BosId && piece.StartsWith(' '))
                piece = piece[1..];
            if (piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece.EndsWith('>')
                && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out var raw))
                bytes.Add(raw);
            else
                bytes.AddRange(Encoding.UTF8.GetBytes(piece));
            previous = id;
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
